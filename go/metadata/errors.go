package metadata

import "errors"

// Sentinel errors, returned wrapped with the detail; test with errors.Is.
var (
	// ErrInvalidTopic: a topic name, partition count, replication factor
	// or retention setting is not allowed; the message says which.
	ErrInvalidTopic = errors.New("metadata: invalid topic")
	// ErrTopicExists: CreateTopic named a topic that exists.
	ErrTopicExists = errors.New("metadata: topic exists")
	// ErrUnknownTopic: the command named a topic that does not exist.
	ErrUnknownTopic = errors.New("metadata: unknown topic")
	// ErrUnknownNode: the command named a node that is not registered.
	ErrUnknownNode = errors.New("metadata: unknown node")
	// ErrNotEnoughNodes: fewer live nodes than the replication factor.
	ErrNotEnoughNodes = errors.New("metadata: not enough nodes")
	// ErrStale: the command was decided against an older state of the
	// partition (its epoch changed meanwhile); decide again.
	ErrStale = errors.New("metadata: stale command")
	// ErrBadEncoding: a command or snapshot could not be decoded.
	ErrBadEncoding = errors.New("metadata: bad encoding")
)
