package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/schollz/progressbar/v3"

	"github.com/outboxkit/offsetstore/cmd/internal/console"
	"github.com/outboxkit/offsetstore/cmd/internal/render"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/migrations"
	"github.com/outboxkit/offsetstore/store"
)

type demoFlags struct {
	databaseURL  string
	aggregates   int
	events       int
	batch        int
	saveEvery    int
	killAt       int
	top          int
	async        bool
	publishDelay time.Duration
	exactlyOnce  bool
	incremental  bool
	image        string
	backend      string
	verbose      bool
}

func (f *demoFlags) validate() error {
	for _, c := range []struct {
		name string
		v    int
	}{{"aggregates", f.aggregates}, {"events", f.events}, {"batch", f.batch}, {"save-every", f.saveEvery}} {
		if c.v < 1 {
			return usageErrorf("--%s %d: want 1 or more", c.name, c.v)
		}
	}
	total := f.aggregates * f.events
	if total < 2 || total/f.events != f.aggregates {
		return usageErrorf("--aggregates × --events must be from 2 to %d", math.MaxInt)
	}
	if f.killAt < 0 || f.killAt >= total {
		return usageErrorf("--kill-at %d: want 1 to %d (events - 1), or 0 for half-way", f.killAt, total-1)
	}
	if f.publishDelay < 0 {
		return usageErrorf("--publish-delay %v: want 0 or more", f.publishDelay)
	}
	if f.top < 0 {
		return usageErrorf("--top %d: want 0 (all) or more", f.top)
	}
	switch f.backend {
	case backendAuto, backendContainer, backendLocal:
	default:
		return usageErrorf("--backend %q: %v", f.backend, errBackend)
	}
	if f.databaseURL != "" && f.backend != backendAuto {
		return usageErrorf("--backend %s and --database-url: --backend chooses the throwaway server, --database-url names a server instead; give one", f.backend)
	}
	return nil
}

func (a *app) demo(ctx context.Context, f *demoFlags) error {
	if err := f.validate(); err != nil {
		return err
	}
	out := a.stdout
	total := f.aggregates * f.events
	killAt := f.killAt
	if killAt == 0 {
		killAt = min(max(total/2+f.saveEvery/2, 1), total-1)
	}
	fmt.Fprintf(out, "demo: %d aggregates x %d events = %d events; the relay's committer saves every %d events and the relay is killed after %d\n",
		f.aggregates, f.events, total, f.saveEvery, killAt)
	if f.incremental {
		fmt.Fprintln(out, "demo: the offsets are saved in incremental mode: a delta of the keys that moved per save, a full snapshot now and then")
	}

	url := f.databaseURL // never $DATABASE_URL: the demo writes
	if url != "" {
		fmt.Fprintf(out, "postgres: backend: the given URL, %s\n", redacted(url))
	} else {
		u, stop, err := a.startPostgres(ctx, f)
		if err != nil {
			return err
		}
		defer stop()
		url = u
	}
	if err := migrations.Up(ctx, url); err != nil {
		return err
	}
	v, _, err := migrations.Version(ctx, url)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "schema: version %d\n", v)

	pool, err := connect(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	j := pgjournal.New(pool)

	var b [3]byte
	_, _ = rand.Read(b[:])
	outbox := "demo-" + hex.EncodeToString(b[:])
	pids := make([]string, f.aggregates)
	width := len(strconv.Itoa(f.aggregates))
	for i := range pids {
		pids[i] = fmt.Sprintf("%s-agg-%0*d", outbox, width, i+1)
	}

	start := time.Now()
	batches, err := a.appendEvents(ctx, j, pids, f.events, f.batch)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "append: %d events in %d batches (%v)\n", total, batches, since(start))

	sc := &scenario{a: a, f: f, url: url, admin: pool, outbox: outbox, pids: pids, total: total, killAt: killAt}
	mode := "at-least-once"
	if f.async {
		mode = "at-least-once, async"
		fmt.Fprintln(out, "mode: async: events are published asynchronously and acknowledged out of order (Track + Mark)")
	}
	res, err := sc.atLeastOnce(ctx, f.async)
	if err != nil {
		return err
	}
	fmt.Fprintln(out)
	if err := render.Fields(out, [][2]string{
		{"events", fmt.Sprint(total)},
		{"published", fmt.Sprint(res.published)},
		{"re-published", fmt.Sprintf("%d (published twice: the at-least-once window between relay 1's last save and the kill)", res.republished)},
		{"lost", fmt.Sprintf("%d (never published; must be 0)", res.lost)},
		{"saves", fmt.Sprintf("%d (the committer's, both relays: one per %d events or %v)", res.saves, f.saveEvery, store.DefaultCommitInterval)},
	}); err != nil {
		return err
	}

	var tx *outcome
	if f.exactlyOnce {
		txOutbox := outbox + "-tx"
		txPids := make([]string, len(pids))
		for i := range txPids {
			txPids[i] = fmt.Sprintf("%s-agg-%0*d", txOutbox, width, i+1)
		}
		fmt.Fprintf(out, "\nexactly-once: the same kill and restart, into a sink table; each batch's rows and its offsets commit in one transaction (SaveTx)\n")
		start = time.Now()
		batches, err := a.appendEvents(ctx, j, txPids, f.events, f.batch)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "append: %d events in %d batches (%v)\n", total, batches, since(start))
		tsc := &scenario{a: a, f: f, url: url, admin: pool, outbox: txOutbox, pids: txPids, total: total, killAt: killAt}
		if tx, err = tsc.exactlyOnce(ctx); err != nil {
			return err
		}
		fmt.Fprintln(out)
		t := render.Table{Header: []string{"", mode, "exactly-once"}, Right: []bool{false, true, true}}
		t.Add("events", fmt.Sprint(total), fmt.Sprint(total))
		t.Add("published", fmt.Sprint(res.published), fmt.Sprint(tx.published))
		t.Add("re-published", fmt.Sprint(res.republished), fmt.Sprint(tx.republished))
		t.Add("lost", fmt.Sprint(res.lost), fmt.Sprint(tx.lost))
		t.Add("saves", fmt.Sprint(res.saves), fmt.Sprint(tx.saves))
		if err := t.Write(out); err != nil {
			return err
		}
	}

	snap, err := finalSnapshot(ctx, j, outbox)
	if err != nil {
		return err
	}
	shown := len(snap.Offsets)
	if f.top > 0 {
		shown = min(shown, f.top)
	}
	fmt.Fprintf(out, "\noffsetstore show %s (first %d of %d keys):\n", outbox, shown, len(snap.Offsets))
	if err := render.Show(out, snap, f.top); err != nil {
		return err
	}
	switch {
	case res.lost > 0:
		return fmt.Errorf("%d events were lost", res.lost)
	case tx != nil && tx.lost > 0:
		return fmt.Errorf("exactly-once: %d events were lost", tx.lost)
	case tx != nil && tx.republished > 0:
		return fmt.Errorf("exactly-once: %d events were written twice", tx.republished)
	}
	return nil
}

// finalSnapshot reads the outbox as a restarted relay would (store.Open and
// Load), and the newest snapshot row for its header. Nothing writes any
// more, so both see the same snapshot.
func finalSnapshot(ctx context.Context, j journal.Journal, outbox string) (*render.Snapshot, error) {
	s, err := store.Open(ctx, j, outbox)
	if err != nil {
		return nil, err
	}
	offsets, err := s.Load(ctx)
	if err != nil {
		return nil, err
	}
	ev, ok, err := j.Last(ctx, s.PersistenceID())
	if err != nil {
		return nil, fmt.Errorf("read the newest snapshot of %q: %w", outbox, err)
	}
	if !ok || ev.SequenceNr != s.SequenceNr() {
		return nil, fmt.Errorf("outbox %q: newest snapshot row %d, the store opened at %d", outbox, ev.SequenceNr, s.SequenceNr())
	}
	return &render.Snapshot{Outbox: outbox, Event: ev, Offsets: offsets, Mode: s.Info().Mode.String()}, nil
}

// connect opens a small pool on url and checks that the server answers.
func connect(ctx context.Context, url string) (*pgxpool.Pool, error) {
	pool, err := console.Connect(ctx, url, "offsetstore-demo")
	if errors.Is(err, console.ErrInvalidConnString) {
		return nil, &usageError{fmt.Errorf("--database-url: %w", err)}
	}
	return pool, err
}

func since(t time.Time) time.Duration {
	return time.Since(t).Round(time.Millisecond)
}

// progress is a progress bar on standard error, drawn only when that is a
// terminal.
func (a *app) progress(max int, desc string) *progressbar.ProgressBar {
	visible := a.isTTY != nil && a.isTTY(a.stderr)
	return progressbar.NewOptions(max,
		progressbar.OptionSetWriter(a.stderr),
		progressbar.OptionSetVisibility(visible),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(50*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}

// appendEvents appends events 1..perStream to every stream, interleaved
// as a service would write them, batch events per Append.
func (a *app) appendEvents(ctx context.Context, j journal.Journal, pids []string, perStream, batch int) (int, error) {
	bar := a.progress(len(pids)*perStream, "append")
	defer func() { _ = bar.Exit() }()
	buf := make([]journal.Event, 0, batch)
	batches := 0
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		if err := j.Append(ctx, buf...); err != nil {
			return fmt.Errorf("append events: %w", err)
		}
		batches++
		_ = bar.Add(len(buf))
		buf = buf[:0]
		return nil
	}
	for seq := 1; seq <= perStream; seq++ {
		for _, pid := range pids {
			buf = append(buf, journal.Event{
				PersistenceID: pid,
				SequenceNr:    uint64(seq),
				Payload:       fmt.Appendf(nil, `{"aggregate":%q,"n":%d}`, pid, seq),
				Manifest:      "demo-event",
			})
			if len(buf) == batch {
				if err := flush(); err != nil {
					return batches, err
				}
			}
		}
	}
	return batches, flush()
}
