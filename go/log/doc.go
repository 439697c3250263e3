// Package log is proglog's storage engine: an append-only, segmented,
// crash-safe commit log. (Full documentation follows with the implementation.)
package log
