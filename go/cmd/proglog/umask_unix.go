//go:build unix

package main

import "syscall"

// restrictUmask makes what the node creates private (no group or other
// permission) whatever mode its creator asks for: proglog's own files are
// created 0600 in 0700 directories, but Raft's snapshot store asks for
// 0755 directories and 0644 files.
func restrictUmask() { syscall.Umask(0o077) }
