// Package netlimit bounds what a listener can cost: Listener caps the
// connections open through it at once and rides out temporary Accept errors
// with a backoff, and Sometimes rate-limits the log lines either produces.
//
// # Connection cap
//
// A Listener with Config.MaxConns set hands out at most that many
// connections at a time; a connection counts until it is closed. One
// accepted while the cap is reached is closed at once (the client sees a
// reset or EOF and retries with its own backoff) and reported to
// Config.OnReject. Closing rather than waiting keeps the file descriptor
// count bounded too: a waiting connection would hold its descriptor, and
// the kernel's backlog would fill behind it with no feedback to anyone.
//
// # Accept backoff
//
// When the operating system runs out of file descriptors, Accept fails at
// once and keeps failing until one is freed; a loop that retries at once
// spins a core and floods the log. Listener.Accept retries temporary errors
// (EMFILE, ENFILE, ECONNABORTED and others whose Temporary method says so,
// and ENOBUFS and ENOMEM) itself, like net/http's Server: it waits 5ms after
// the first, doubling up to 1s, and resets after a successful Accept. Each
// such error is reported to Config.OnAcceptError with the delay about to be
// waited; callers log it through a Sometimes. Other errors, and Close,
// end Accept as usual.
package netlimit
