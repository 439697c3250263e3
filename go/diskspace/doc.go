// Package diskspace keeps a node from filling its disk: a Guard watches the
// free space of the file system holding a directory and refuses writes
// below a watermark, so the node keeps serving reads and stays in its Raft
// cluster instead of failing writes half-way (or crashing) at the last
// byte.
//
// Guard.Check fails with *LowSpaceError (errors.Is ErrLowSpace) while the
// free space is below Config.MinFreeBytes, and Guard.CheckReserve while it
// is below half of it, the reserve: callers check before taking new
// client data (Check) and before writing what the cluster needs to make
// progress (CheckReserve), such as Raft entries. Both resume by themselves
// when space returns.
//
// The free space is statfs(2)'s f_bavail × f_bsize (what an unprivileged
// user may still write; root may dip into the file system's own reserve).
// It is cached and read again at most once per Config.RefreshInterval, by
// the first call after the interval, so checking on every append costs an
// atomic load; in between, writers subtract what they write (Guard.Use),
// so a fast writer cannot run far past the watermark before the next
// measurement. If statfs fails after New, the last value is kept.
package diskspace
