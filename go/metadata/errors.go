package metadata

import (
	"errors"
	"fmt"

	"github.com/proglog/proglog/go/commitlog"
)

// Sentinel errors, returned wrapped with the detail; test with errors.Is.
// Those that mean what one of go/commitlog's topic errors means wrap it,
// so errors.Is(err, commitlog.ErrUnknownTopic) holds for ErrUnknownTopic
// and the API server maps them without knowing this package.
var (
	// ErrInvalidTopic: a topic name, partition count, replication factor
	// or retention setting is not allowed; the message says which.
	ErrInvalidTopic = fmt.Errorf("metadata: %w", commitlog.ErrInvalidTopic)
	// ErrTopicExists: CreateTopic named a topic that exists.
	ErrTopicExists = fmt.Errorf("metadata: %w", commitlog.ErrTopicExists)
	// ErrUnknownTopic: the command named a topic that does not exist.
	ErrUnknownTopic = fmt.Errorf("metadata: %w", commitlog.ErrUnknownTopic)
	// ErrUnknownPartition: the command named a partition the topic does
	// not have.
	ErrUnknownPartition = fmt.Errorf("metadata: %w", commitlog.ErrUnknownPartition)
	// ErrUnknownNode: the command named a node that is not registered.
	ErrUnknownNode = errors.New("metadata: unknown node")
	// ErrNotEnoughNodes: fewer live nodes than the replication factor.
	ErrNotEnoughNodes = fmt.Errorf("metadata: %w", commitlog.ErrNotEnoughNodes)
	// ErrStale: the command was decided against an older state of the
	// partition (its epoch changed meanwhile); decide again.
	ErrStale = errors.New("metadata: stale command")
	// ErrTooManyGroups: a join would create a consumer group beyond the
	// proposer's limit of groups. It wraps commitlog.ErrTooManyMembers
	// (RESOURCE_EXHAUSTED): the port has no sentinel of its own for it.
	ErrTooManyGroups = fmt.Errorf("metadata: too many consumer groups: %w", commitlog.ErrTooManyMembers)
	// ErrTooManyNodes: registering a node would exceed MaxNodes.
	ErrTooManyNodes = errors.New("metadata: too many nodes")
	// ErrBadEncoding: a command or snapshot could not be decoded.
	ErrBadEncoding = errors.New("metadata: bad encoding")
)
