package failover_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	rel "github.com/outboxkit/offsetstore/internal/reliability"
	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// writer saves continuously through the pair's multi-host URL and logs
// every save that returned nil.
type writer struct {
	name   string // the outbox, and the sessions' application_name
	mode   rel.Mode
	tx     bool // SaveTx with sink rows, else Save
	s      *store.Store
	txPool *pgxpool.Pool
	sink   string // quoted

	// gate is read-held by every save: pause takes it, so that no save is
	// under way until resume.
	gate sync.RWMutex

	mu      sync.Mutex
	acked   map[string]uint64 // the merge of every acknowledged save
	acks    [][]ack           // every acknowledged save: what it saved
	ok      int               // saves (transactions) acknowledged
	retried int               // SaveTx: ErrRetryTx (an earlier one in doubt had committed)
	doubt   int               // ErrInDoubt
	failed  int               // other errors
	fenced  []error           // must stay empty: there is no other writer
	lastOK  time.Time
}

// ack is one acknowledged save: key at value.
type ack struct {
	key   string
	value uint64
}

// txStreams is how many source streams a SaveTx writer follows.
const txStreams = 16

func txStream(i int) string { return fmt.Sprintf("order-%02d", i) }

// newWriter opens a writer's store on url; level, when not empty, is its
// sessions' synchronous_commit.
func newWriter(t *testing.T, url string, m rel.Mode, tx bool, level string) *writer {
	t.Helper()
	kind := "save"
	if tx {
		kind = "savetx"
	}
	w := &writer{name: strings.ToLower(m.Name) + "-" + kind, mode: m, tx: tx, acked: map[string]uint64{}}
	configure := func(cfg *pgxpool.Config) {
		if level != "" {
			cfg.ConnConfig.RuntimeParams["synchronous_commit"] = level
		}
	}
	pool := newPool(t, url, w.name, false, configure)
	s, err := store.Open(t.Context(), pgjournal.New(pool), w.name, m.Options...)
	if err != nil {
		t.Fatalf("%s: open: %v", w.name, err)
	}
	w.s = s
	if tx {
		w.txPool = newPool(t, url, w.name, false, configure)
		w.sink = pgx.Identifier{"sink_" + strings.ReplaceAll(w.name, "-", "_")}.Sanitize()
		// No unique key: a duplicate must show, not be refused.
		if _, err := pool.Exec(t.Context(), `CREATE TABLE `+w.sink+` (pid text NOT NULL, seq bigint NOT NULL)`); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// run saves until ctx is done.
func (w *writer) run(ctx context.Context) {
	for n := uint64(1); ctx.Err() == nil; n++ {
		w.gate.RLock()
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var acks []ack
		var err error
		if w.tx {
			acks, err = w.stepTx(sctx)
		} else {
			// "all" moves on every save, and one of 64 other keys.
			m := map[string]uint64{"all": n, fmt.Sprintf("k%02d", n%64): n}
			if err = w.s.Save(sctx, m); err == nil {
				acks = []ack{{"all", n}, {fmt.Sprintf("k%02d", n%64), n}}
			}
		}
		cancel()
		w.gate.RUnlock()
		w.mu.Lock()
		switch {
		case err == nil:
			w.ok++
			w.lastOK = time.Now()
			for _, a := range acks {
				w.acked[a.key] = max(w.acked[a.key], a.value)
			}
			w.acks = append(w.acks, acks)
		case errors.Is(err, store.ErrRetryTx):
			w.retried++
		case errors.Is(err, store.ErrFenced):
			w.fenced = append(w.fenced, err)
		case errors.Is(err, store.ErrInDoubt):
			w.doubt++
		default:
			w.failed++
		}
		w.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			if errors.Is(err, store.ErrFenced) {
				return
			}
			time.Sleep(5 * time.Millisecond) // the server may be down: do not spin
		}
	}
}

// stepTx publishes the next one to four events of a random stream into
// the sink, resuming from the offsets Load returns: the sink rows and the
// offset in one transaction.
func (w *writer) stepTx(ctx context.Context) ([]ack, error) {
	offsets, err := w.s.Load(ctx)
	if err != nil {
		return nil, err
	}
	pid := txStream(rand.IntN(txStreams))
	from := offsets[pid] + 1
	to := from + uint64(rand.IntN(4))
	tx, err := w.txPool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `INSERT INTO `+w.sink+` (pid, seq) SELECT $1, g FROM generate_series($2::bigint, $3::bigint) AS g`,
		pid, int64(from), int64(to)); err != nil {
		return nil, err
	}
	if err := w.s.SaveTx(ctx, pgjournal.New(tx), map[string]uint64{pid: to}, tx.Commit); err != nil {
		return nil, err
	}
	return []ack{{pid, to}}, nil
}

// pause waits until no save is under way and keeps new ones from
// starting until resume.
func (w *writer) pause() { w.gate.Lock() }

func (w *writer) resume() { w.gate.Unlock() }

// snapshot returns the acknowledged offsets so far.
func (w *writer) snapshot() map[string]uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.acked)
}

// since returns when the writer last had a save acknowledged.
func (w *writer) since() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastOK
}

// lost counts the acknowledged saves (of the first upTo) whose offsets
// loaded does not cover.
func (w *writer) lost(loaded map[string]uint64, upTo int) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, saved := range w.acks[:min(upTo, len(w.acks))] {
		for _, a := range saved {
			if loaded[a.key] < a.value {
				n++
				break
			}
		}
	}
	return n
}

// acksSoFar returns how many acknowledged saves are logged.
func (w *writer) acksSoFar() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acks)
}

// checkSink checks the sink of a SaveTx writer on the server at url
// against loaded, the offsets there: every event of every stream up to
// its offset has exactly one row, and none lies beyond it. It returns the
// events, duplicate rows, missing events and rows beyond.
func (w *writer) checkSink(ctx context.Context, url string, loaded map[string]uint64) (events, duplicates, missing, beyond int64, err error) {
	err = withConn(ctx, url, func(c *pgx.Conn) error {
		for i := range txStreams {
			pid := txStream(i)
			end := loaded[pid]
			var rows, distinct, over, inRange int64
			if err := c.QueryRow(ctx, `
				SELECT count(*), count(DISTINCT seq), count(*) FILTER (WHERE seq > $2),
				       count(DISTINCT seq) FILTER (WHERE seq BETWEEN 1 AND $2)
				  FROM `+w.sink+` WHERE pid = $1`, pid, int64(end)).Scan(&rows, &distinct, &over, &inRange); err != nil {
				return err
			}
			events += int64(end)
			duplicates += rows - distinct
			missing += int64(end) - inRange
			beyond += over
		}
		return nil
	})
	return events, duplicates, missing, beyond, err
}

func withConn(ctx context.Context, url string, f func(c *pgx.Conn) error) error {
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	return f(c)
}

// writers opens one writer per mode and kind on the pair: Save and SaveTx,
// full and incremental. The full mode's sessions use synchronous_commit
// remote_apply, the incremental mode's the servers' (on).
func writers(t *testing.T, r *testdb.Replicated) []*writer {
	t.Helper()
	var ws []*writer
	for _, m := range rel.Modes {
		level := ""
		if m.Options == nil {
			level = "remote_apply"
		}
		for _, tx := range []bool{false, true} {
			ws = append(ws, newWriter(t, r.URL, m, tx, level))
		}
	}
	return ws
}
