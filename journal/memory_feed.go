package journal

import (
	"context"
	"slices"
	"strconv"
	"strings"
)

var _ FeedReader = (*Memory)(nil)

// memMove is one entry of Memory's feed: a batch appended the stream's
// rows up to seq.
type memMove struct {
	pid string
	seq uint64
}

// moved records in the feed that pid was appended to, up to seq. The
// caller holds m.mu for writing.
func (m *Memory) moved(pid string, seq uint64) {
	m.moves = append(m.moves, memMove{pid: pid, seq: seq})
}

// FeedStart implements FeedReader: the cursor is the number of feed
// entries so far, in decimal.
func (m *Memory) FeedStart(ctx context.Context) (FeedCursor, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	return FeedCursor(strconv.Itoa(len(m.moves))), nil
}

// ReadFeed implements FeedReader. Memory commits each Append whole under
// its lock, so every append is reported by exactly one read of a chain.
// The feed is kept for the journal's life (one entry per stream of each
// append): Memory is meant for tests.
func (m *Memory) ReadFeed(ctx context.Context, since FeedCursor, opts FeedOptions, fn func(Moved) error) (FeedCursor, error) {
	if err := ValidateFeedOptions(opts); err != nil {
		return since, err
	}
	from := 0
	if since != "" {
		n, err := strconv.ParseUint(string(since), 10, 63)
		if err != nil || strings.HasPrefix(string(since), "+") {
			return since, &InvalidArgumentError{Field: "feed cursor", Reason: "is not one this journal returned"}
		}
		from = int(n)
	}
	if err := ctx.Err(); err != nil {
		return since, err
	}
	highest := map[string]uint64{}
	m.mu.RLock()
	if from > len(m.moves) {
		m.mu.RUnlock()
		return since, &InvalidArgumentError{Field: "feed cursor", Reason: "is past the end of this journal's feed"}
	}
	for _, mv := range m.moves[from:] {
		if opts.ExcludePrefix != "" && strings.HasPrefix(mv.pid, opts.ExcludePrefix) {
			continue
		}
		highest[mv.pid] = max(highest[mv.pid], mv.seq)
	}
	next := FeedCursor(strconv.Itoa(len(m.moves)))
	m.mu.RUnlock()

	pids := make([]string, 0, len(highest))
	for pid := range highest {
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	for _, pid := range pids {
		if err := fn(Moved{PersistenceID: pid, Highest: highest[pid]}); err != nil {
			return since, err
		}
	}
	return next, nil
}

// FeedExact implements FeedReader: true.
func (m *Memory) FeedExact() bool { return true }
