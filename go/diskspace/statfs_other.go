//go:build !unix

package diskspace

import "errors"

// statfs is not implemented here: New fails, so set Config.Statfs.
func statfs(string) (uint64, error) { return 0, errors.ErrUnsupported }
