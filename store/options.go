package store

import (
	"fmt"
	"log/slog"
)

const (
	// DefaultRetention is how many snapshots an outbox keeps by default.
	DefaultRetention = 2
	// DefaultPruneInterval is how many saves pass between two prunes by
	// default.
	DefaultPruneInterval = 16

	maxWriterLen = 256
)

// Option configures Open.
type Option func(*config)

type config struct {
	keep       int
	pruneEvery int
	writer     string
	logger     *slog.Logger
	noPrune    bool
	observe    func(WriteEvent)

	incremental bool
	ratio       float64
	maxDeltas   int
}

// WithRetention keeps the newest keep snapshots of the outbox and prunes
// older ones (see WithPruneInterval). keep must be at least 1. Defaults to
// DefaultRetention (2).
func WithRetention(keep int) Option { return func(c *config) { c.keep = keep } }

// WithPruneInterval prunes old snapshots once every n saves, so that a
// typical Save is a single journal call. An outbox holds at most
// retention + n snapshot rows. n must be at least 1. Defaults to
// DefaultPruneInterval (16).
func WithPruneInterval(n int) Option { return func(c *config) { c.pruneEvery = n } }

// WithoutPruning makes the store never prune old snapshots, whatever
// WithRetention and WithPruneInterval say. It is for operator tools (the
// CLI uses it) that write one snapshot into an outbox a relay owns and must
// not cut the history that the relay's own retention keeps; the relay
// prunes at its next write as usual. Defaults to pruning.
func WithoutPruning() Option { return func(c *config) { c.noPrune = true } }

// WithWriterID sets the writer id stamped on every snapshot this store
// writes. It must be unique per store instance: fencing and lost-ack
// adoption tell this store's rows from others' by it. Defaults to a random
// UUID.
func WithWriterID(id string) Option { return func(c *config) { c.writer = id } }

// WithLogger sets a logger for events that are not errors of the call at
// hand: a prune that failed and will be retried, a lost acknowledgement
// that was adopted, fencing. Defaults to discarding.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// mode is the mode the store writes in.
func (c *config) mode() Mode {
	if c.incremental {
		return ModeIncremental
	}
	return ModeFull
}

func (c *config) validate() error {
	if c.keep < 1 {
		return fmt.Errorf("%w: retention %d is below 1", ErrInvalidOption, c.keep)
	}
	if c.pruneEvery < 1 {
		return fmt.Errorf("%w: prune interval %d is below 1", ErrInvalidOption, c.pruneEvery)
	}
	if reason := textProblem(c.writer, maxWriterLen); reason != "" {
		return fmt.Errorf("%w: writer id %s %s", ErrInvalidOption, quoteShort(c.writer), reason)
	}
	return c.validateIncremental()
}
