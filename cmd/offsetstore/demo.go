package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"

	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/migrations"
	"github.com/outboxkit/offsetstore/store"
)

const (
	// envImage names the image demo starts, as for the tests
	// (internal/testdb.EnvImage).
	envImage = "OFFSETSTORE_TEST_IMAGE"
	// defaultImage is the pinned official image used when envImage is
	// unset (internal/testdb.DefaultImage).
	defaultImage = "postgres:17-alpine"
)

type demoFlags struct {
	aggregates int
	events     int
	batch      int
	saveEvery  int
	killAt     int
	top        int
	image      string
	verbose    bool
}

func newDemoCmd(a *app) *cobra.Command {
	var f demoFlags
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a relay, kill it mid-way, restart it, and check that no event was lost",
		Long: `Run the offset store end to end, at-least-once delivery made visible:

 1. Start PostgreSQL in a container through testcontainers-go (image
    $` + envImage + `, else ` + defaultImage + `), unless --database-url names a
    server; the container is terminated at the end, also on error or Ctrl-C.
    $DATABASE_URL is deliberately not used: the demo writes rows.
 2. Apply the migrations and append --events events to each of --aggregates
    streams, --batch events per Append.
 3. Run a relay goroutine: for each stream, replay from its offset + 1,
    publish each event to an in-memory sink (a count per persistence id and
    sequence number), and save the offsets every --save-every events.
 4. Kill the relay after --kill-at events (cancel its context: no final save),
    reopen the store as a restarted relay would, and finish from the saved
    offsets. When the restarted relay has saved once, the killed one wakes
    up and tries a late save, which is refused (store.ErrFenced).
 5. Print events, published, re-published (events published twice: the
    at-least-once window between the last save and the kill) and lost
    (events never published; must be 0), and the final offsets.

The exit status is 1 if any event was lost. A progress bar is drawn on
standard error when it is a terminal. Every run uses its own outbox and
stream names (demo-<random>), so it can run against a database repeatedly.`,
		Example: `  offsetstore demo
  OFFSETSTORE_TEST_IMAGE=localhost/postgres:17 offsetstore demo --aggregates 1000 --events 20
  offsetstore demo --database-url postgres://offsetstore:offsetstore@127.0.0.1:5432/offsetstore`,
		Args: exactArgs(),
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			return a.demo(ctx, &f)
		}),
	}
	fs := cmd.Flags()
	fs.IntVar(&f.aggregates, "aggregates", 200, "number of event streams (aggregates)")
	fs.IntVar(&f.events, "events", 50, "events per stream")
	fs.IntVar(&f.batch, "batch", 1000, "events per Append")
	fs.IntVar(&f.saveEvery, "save-every", 500, "the relay saves its offsets every N events")
	fs.IntVar(&f.killAt, "kill-at", 0, "kill the first relay after N published events (default: half-way, between two saves)")
	fs.IntVar(&f.top, "top", 10, "print the first N keys of the final offsets (0: all)")
	fs.StringVar(&f.image, "image", "", "container image (default $"+envImage+", else "+defaultImage+")")
	fs.BoolVar(&f.verbose, "verbose", false, "print testcontainers' log on standard error")
	return cmd
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
	if f.top < 0 {
		return usageErrorf("--top %d: want 0 (all) or more", f.top)
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
	fmt.Fprintf(out, "demo: %d aggregates x %d events = %d events; the relay saves every %d events and is killed after %d\n",
		f.aggregates, f.events, total, f.saveEvery, killAt)

	url := a.databaseURL // never $DATABASE_URL: the demo writes
	if url == "" {
		u, stop, err := a.startPostgres(ctx, f)
		if err != nil {
			return err
		}
		defer stop()
		url = u
	}
	if err := migrations.Up(ctx, normalizeURL(url)); err != nil {
		return err
	}
	v, _, err := migrations.Version(ctx, normalizeURL(url))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "schema: version %d\n", v)

	pool, err := connect(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	c := &conn{pool: pool, j: pgjournal.New(pool), table: pgx.Identifier{pgjournal.DefaultTable}}

	var b [3]byte
	_, _ = rand.Read(b[:])
	outbox := "demo-" + hex.EncodeToString(b[:])
	pids := make([]string, f.aggregates)
	width := len(strconv.Itoa(f.aggregates))
	for i := range pids {
		pids[i] = fmt.Sprintf("%s-agg-%0*d", outbox, width, i+1)
	}

	start := time.Now()
	batches, err := a.appendEvents(ctx, c.j, pids, f.events, f.batch)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "append: %d events in %d batches (%v)\n", total, batches, since(start))

	sink := newSink(pids, f.events)

	// Relay 1, killed after killAt events: the sink cancels its context
	// right after that publish, before any further save.
	relayCtx, kill := context.WithCancel(ctx)
	defer kill()
	s1, err := store.Open(ctx, c.j, outbox, store.WithWriterID(outbox+"/relay-1"))
	if err != nil {
		return err
	}
	bar := a.progress(killAt, "relay 1")
	sink.onPublish = func(n int) {
		_ = bar.Add(1)
		if n == killAt {
			kill()
		}
	}
	start = time.Now()
	r1, err := goRelay(relayCtx, c.j, s1, pids, f.saveEvery, sink.publish, nil)
	_ = bar.Exit()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if !errors.Is(err, context.Canceled) {
		return fmt.Errorf("relay 1: %v (want it killed after %d events)", err, killAt)
	}
	fmt.Fprintf(out, "relay 1: published %d, saved %d times (last at snapshot %d), killed %d events after its last save (%v)\n",
		r1.published, r1.saves, s1.SequenceNr(), r1.published-r1.lastSaved, since(start))

	// Relay 2: a restart, with a fresh store loading the saved offsets.
	s2, err := store.Open(ctx, c.j, outbox, store.WithWriterID(outbox+"/relay-2"))
	if err != nil {
		return err
	}
	resumed := s2.SequenceNr()
	bar = a.progress(total-r1.lastSaved, "relay 2")
	sink.onPublish = func(int) { _ = bar.Add(1) }
	// The killed relay wakes up (a zombie) once relay 2 has saved, and
	// tries to save what it published after its last save.
	var zombie error
	afterSave := func(saves int) {
		if saves == 1 {
			zombie = s1.Save(ctx, r1.pending)
		}
	}
	start = time.Now()
	r2, err := goRelay(ctx, c.j, s2, pids, f.saveEvery, sink.publish, afterSave)
	_ = bar.Exit()
	if err != nil {
		return fmt.Errorf("relay 2: %w", err)
	}
	fmt.Fprintf(out, "relay 2: reopened at snapshot %d, published %d, saved %d times (%v)\n",
		resumed, r2.published, r2.saves, since(start))
	if !errors.Is(zombie, store.ErrFenced) {
		return fmt.Errorf("the killed relay's late save returned %v, want store.ErrFenced", zombie)
	}
	fmt.Fprintln(out, "fencing: the killed relay's late save was refused (store.ErrFenced)")

	published, republished, lost := sink.result()
	fmt.Fprintln(out)
	if err := writeFields(out, [][2]string{
		{"events", fmt.Sprint(total)},
		{"published", fmt.Sprint(published)},
		{"re-published", fmt.Sprintf("%d (published twice: the at-least-once window between relay 1's last save and the kill)", republished)},
		{"lost", fmt.Sprintf("%d (never published; must be 0)", lost)},
	}); err != nil {
		return err
	}

	snap, err := readSnapshot(ctx, c, outbox)
	if err != nil {
		return err
	}
	shown := len(snap.offsets)
	if f.top > 0 {
		shown = min(shown, f.top)
	}
	fmt.Fprintf(out, "\noffsetstore show %s (first %d of %d keys):\n", outbox, shown, len(snap.offsets))
	if err := writeShow(out, snap, f.top); err != nil {
		return err
	}
	var behind int
	for _, pid := range pids {
		if snap.offsets[pid] != uint64(f.events) {
			behind++
		}
	}
	switch {
	case lost > 0:
		return fmt.Errorf("%d events were lost", lost)
	case behind > 0:
		return fmt.Errorf("%d streams' final offsets are not %d", behind, f.events)
	}
	return nil
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

// startPostgres starts a PostgreSQL container and returns its URL and a
// function that terminates it.
func (a *app) startPostgres(ctx context.Context, f *demoFlags) (string, func(), error) {
	image := f.image
	if image == "" {
		image = a.getenv(envImage)
	}
	if image == "" {
		image = defaultImage
	}
	fmt.Fprintf(a.stdout, "postgres: starting %s in a container (testcontainers-go)\n", image)
	logger := tclog.NewNoopLogger()
	if f.verbose {
		logger = log.New(a.stderr, "testcontainers: ", log.LstdFlags)
	}
	// The Docker provider logs through the package default, not the
	// logger of the request.
	tclog.SetDefault(logger)
	start := time.Now()
	ctr, err := tcpostgres.Run(ctx, image,
		testcontainers.WithLogger(logger),
		tcpostgres.WithDatabase("offsetstore"),
		tcpostgres.WithUsername("offsetstore"),
		tcpostgres.WithPassword("offsetstore"),
		tcpostgres.BasicWaitStrategies(),
	)
	stop := func() {
		if ctr == nil {
			return
		}
		// Not ctx: it may be cancelled already (Ctrl-C).
		tctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		id := shortID(ctr.GetContainerID())
		if err := testcontainers.TerminateContainer(ctr, testcontainers.StopContext(tctx)); err != nil {
			fmt.Fprintf(a.stderr, "warning: terminate container %s: %v\n", id, err)
			return
		}
		fmt.Fprintf(a.stdout, "postgres: container %s terminated\n", id)
	}
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("start PostgreSQL in a container (image %s): %w\n"+
			"demo needs a Docker engine (set $%s to a local image if no registry is reachable), or --database-url", image, err, envImage)
	}
	url, err := ctr.ConnectionString(ctx, "sslmode=disable")
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("container connection string: %w", err)
	}
	fmt.Fprintf(a.stdout, "postgres: container %s ready (%v)\n", shortID(ctr.GetContainerID()), since(start))
	return url, stop, nil
}

func shortID(id string) string { return id[:min(12, len(id))] }

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

// relayRun is what one relay did.
type relayRun struct {
	published int
	saves     int
	lastSaved int               // published when the last save returned
	pending   map[string]uint64 // published but not saved
}

// goRelay runs a relay in a goroutine of its own and waits for it to end:
// killed through ctx, failed, or done.
func goRelay(ctx context.Context, j journal.Journal, s *store.Store, pids []string, saveEvery int,
	publish func(pid string, seq uint64), afterSave func(saves int)) (*relayRun, error) {
	type result struct {
		r   *relayRun
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := runRelay(ctx, j, s, pids, saveEvery, publish, afterSave)
		done <- result{r, err}
	}()
	res := <-done
	return res.r, res.err
}

// runRelay is the relay: for each stream, replay from the saved offset +
// 1, publish, and save the offsets every saveEvery events and at the end.
// afterSave, if not nil, is called after each save.
func runRelay(ctx context.Context, j journal.Journal, s *store.Store, pids []string, saveEvery int,
	publish func(pid string, seq uint64), afterSave func(saves int)) (*relayRun, error) {
	r := &relayRun{pending: map[string]uint64{}}
	offsets, err := s.Load(ctx)
	if err != nil {
		return r, err
	}
	save := func() error {
		if err := s.Save(ctx, r.pending); err != nil {
			return err
		}
		clear(r.pending)
		r.saves++
		r.lastSaved = r.published
		if afterSave != nil {
			afterSave(r.saves)
		}
		return nil
	}
	for _, pid := range pids {
		for ev, err := range j.Replay(ctx, pid, offsets[pid]+1, math.MaxUint64, math.MaxUint64) {
			if err != nil {
				return r, err
			}
			publish(pid, ev.SequenceNr)
			r.published++
			r.pending[pid] = ev.SequenceNr
			if err := ctx.Err(); err != nil {
				return r, err // killed
			}
			if r.published%saveEvery == 0 {
				if err := save(); err != nil {
					return r, err
				}
			}
		}
	}
	if len(r.pending) > 0 {
		if err := save(); err != nil {
			return r, err
		}
	}
	return r, nil
}

// sink is where the relays publish: a count per (stream, sequence nr).
type sink struct {
	mu        sync.Mutex
	counts    map[string][]uint32 // pid → count per seq-1
	total     int
	onPublish func(total int)
}

func newSink(pids []string, perStream int) *sink {
	s := &sink{counts: make(map[string][]uint32, len(pids))}
	for _, pid := range pids {
		s.counts[pid] = make([]uint32, perStream)
	}
	return s
}

func (s *sink) publish(pid string, seq uint64) {
	s.mu.Lock()
	s.counts[pid][seq-1]++
	s.total++
	n, hook := s.total, s.onPublish
	s.mu.Unlock()
	if hook != nil {
		hook(n)
	}
}

// result counts the events published, those published more than once,
// and those never published.
func (s *sink) result() (published, republished, lost int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, counts := range s.counts {
		for _, n := range counts {
			switch {
			case n == 0:
				lost++
			case n > 1:
				republished++
			}
		}
	}
	return s.total, republished, lost
}
