// Package history records what the clients of a fault test asked and were
// told, and checks it against the logs the nodes hold at the end.
//
// The contract it checks is proglog's promise: an acknowledged record is
// never lost, never duplicated at another offset, and never read in a
// different order; linearizable reads are linearizable. Records whose
// produce failed ambiguously may or may not be present; they are counted.
// An idempotent producer's retries are part of one operation (invoked at
// the first attempt, completed at the acknowledgement), so a retry that
// writes its records again shows as a value at two offsets: duplicated.
package history

import (
	"sync"
	"time"
)

// Kind is what an operation did.
type Kind int

const (
	// Append is a Produce or ProduceBatch of one or more records.
	Append Kind = iota + 1
	// Read is a Consume of one offset with linearizable consistency.
	Read
)

func (k Kind) String() string {
	switch k {
	case Append:
		return "append"
	case Read:
		return "read"
	}
	return "unknown-kind"
}

// Outcome is what the client learned about an operation.
type Outcome int

const (
	// OK: the server acknowledged it (an Append's records are at Offset...;
	// a Read found Value at Offset, or Found is false: OUT_OF_RANGE).
	OK Outcome = iota + 1
	// Failed: the server proved nothing was written (NOT_LEADER, invalid
	// argument, permission denied) or a read failed (reads change nothing).
	Failed
	// Unknown: the request may or may not have taken effect (timeout,
	// connection broken, leadership lost mid-append).
	Unknown
)

func (o Outcome) String() string {
	switch o {
	case OK:
		return "ok"
	case Failed:
		return "failed"
	case Unknown:
		return "unknown"
	}
	return "unknown-outcome"
}

// Op is one request and its response.
type Op struct {
	Process int    // the client goroutine that issued it (sequential per process)
	Node    string // node the request was sent to
	Kind    Kind
	Call    time.Time // just before the request was sent
	Return  time.Time // just after the response (or error) arrived
	Outcome Outcome
	Err     string // the error, for Failed and Unknown

	// Append: the values sent (unique across the whole run) and, if OK,
	// the offset of the first (the others follow consecutively).
	Values []string
	// Append: how many times the request was sent (retries after
	// ambiguous failures resend the same values), and whether the
	// acknowledgement said the records had been written before
	// (ProduceResponse.duplicate: an idempotent retry answered with the
	// original offsets).
	Attempts  int
	Duplicate bool
	// Append (if OK): first offset. Read: the offset asked for.
	Offset uint64
	// Read (if OK): whether a record was there and its value.
	Found bool
	Value string
}

// Delivery is one record a consumer received from a ConsumeStream.
type Delivery struct {
	Offset uint64
	Value  string
	At     time.Time
}

// Session is one ConsumeStream call of a consumer: from From on Node, the
// records in the order received, until the stream ended.
type Session struct {
	Consumer   int
	Node       string
	From       uint64
	Deliveries []Delivery
	End        string // why it ended: error text, or "" if stopped by the test
}

// Recorder collects operations and consumer sessions from many goroutines.
// The zero value is ready to use.
type Recorder struct {
	mu       sync.Mutex
	ops      []Op
	sessions []Session
}

// Add records op.
func (r *Recorder) Add(op Op) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

// AddSession records a finished consumer session.
func (r *Recorder) AddSession(s Session) {
	r.mu.Lock()
	r.sessions = append(r.sessions, s)
	r.mu.Unlock()
}

// Ops returns a copy of the operations recorded so far.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Op(nil), r.ops...)
}

// Sessions returns a copy of the consumer sessions recorded so far.
func (r *Recorder) Sessions() []Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Session(nil), r.sessions...)
}
