//go:build !linux

package segment

// iovec is unused where pwritev is not wired up; osFile then has no
// WritevAt and the store copies records into one buffer.
type iovec struct{}
