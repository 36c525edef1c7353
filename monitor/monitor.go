package monitor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/store"
)

// ErrInvalidOption matches the error of New for an option out of range.
var ErrInvalidOption = errors.New("monitor: invalid option")

// Unseen says how the source streams an outbox has no key for count.
type Unseen int

const (
	// UnseenCount counts a source stream of the journal (a persistence id
	// that does not start with store.PersistenceIDPrefix) that no monitored
	// outbox has a key for as a key at offset 0 of the outbox whose keys
	// are nearest to it (the longest prefix shared with a neighbouring key
	// in byte order; every outbox that ties): its whole stream is lag, its
	// first event's time the lag time. A relay keys a stream as soon as it
	// publishes its first event, so a stream stays unseen only while no
	// relay has got to it: a relay that died while new aggregates got
	// events is not OK (it is STOP once the threshold passes), a quiet
	// journal has no unseen stream, and outboxes that each follow their
	// own streams (orders-… and invoice-…) do not count each other's. A
	// family of streams that no relay follows would count forever: use
	// UnseenIgnore for such a journal. The default.
	UnseenCount Unseen = iota
	// UnseenIgnore counts only the outbox's keys: for a relay that follows
	// some of the journal's streams, whose other streams would otherwise
	// be lag forever. A dead relay whose waiting events are all in streams
	// it has not seen yet then looks OK.
	UnseenIgnore
)

func (u Unseen) String() string {
	if u == UnseenIgnore {
		return "ignore"
	}
	return "count"
}

// ParseUnseen parses "count" or "ignore".
func ParseUnseen(s string) (Unseen, error) {
	switch s {
	case "count":
		return UnseenCount, nil
	case "ignore":
		return UnseenIgnore, nil
	}
	return 0, fmt.Errorf("%w: unseen streams %q, want count or ignore", ErrInvalidOption, s)
}

const (
	// DefaultTop is the number of keys with the largest lag a report
	// names.
	DefaultTop = 10
	// DefaultDiscoveryPage is how many persistence ids one poll lists to
	// find new outboxes and unseen streams (see WithDiscoveryPage).
	DefaultDiscoveryPage = 10_000
)

// Option configures New.
type Option func(*config)

type config struct {
	outboxes []string
	rules    Rules
	unseen   Unseen
	page     int
	top      int
	now      func() time.Time
}

// WithOutboxes monitors the named outboxes alone; one without a snapshot
// is NOTFOUND. Defaults to every outbox of the journal, found by listing
// the persistence ids that start with store.PersistenceIDPrefix (the
// journal must be a journal.StreamLister then).
func WithOutboxes(names ...string) Option {
	return func(c *config) { c.outboxes = slices.Clone(names) }
}

// WithRules sets the window and the STOP threshold (see Rules). Defaults to
// Rules{} (DefaultWindow, DefaultStopAfter).
func WithRules(r Rules) Option { return func(c *config) { c.rules = r } }

// WithUnseen says how streams without a key count (see Unseen). Defaults to
// UnseenCount.
func WithUnseen(u Unseen) Option { return func(c *config) { c.unseen = u } }

// WithDiscoveryPage sets how many persistence ids each poll lists, going
// on where the previous poll stopped and starting again at the end: new
// outboxes (when all are monitored) and unseen streams are found within
// streams/n polls. n = 0 lists every id at every poll (what a one-shot
// check wants). The first poll of a monitor of every outbox lists the
// outboxes whole (ListOptions.Prefix). Defaults to DefaultDiscoveryPage.
func WithDiscoveryPage(n int) Option { return func(c *config) { c.page = n } }

// WithTop sets how many keys with the largest lag a report names (0:
// none). Defaults to DefaultTop.
func WithTop(n int) Option { return func(c *config) { c.top = n } }

// WithClock sets the clock the ages are measured with. Defaults to
// time.Now. The journal's written_at comes from the database server's
// clock: keep the two in step (NTP); an age that comes out negative is 0.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// Report is the state of one outbox after a poll.
type Report struct {
	Figures
	// Status and Reason are Evaluate's over the window.
	Status Status
	Reason string
	// Window are the polls of the window, oldest first, the last one
	// current: what the status was judged on, and the points of a chart of
	// the lag.
	Window []Point
}

// Point is one poll of the window.
type Point struct {
	At      time.Time
	Lag     uint64
	LagTime time.Duration
	Status  Status
}

// Monitor polls the outboxes of a journal and judges each one's status
// over a window of polls. A service calls Poll at an interval of its
// choosing (the exporter of cmd/offsetstore: every 15 s) and reads
// Reports from any goroutine. It only reads the journal (SELECT).
type Monitor struct {
	j   journal.Journal
	cfg config

	mu     sync.Mutex      // serialises Poll
	named  map[string]bool // cfg.outboxes, the outboxes reported; nil: all
	boxes  map[string]*outbox
	order  []string // outbox names, sorted
	cursor string   // where the discovery listing goes on
	listed bool     // the outboxes were listed whole once

	rmu     sync.RWMutex // guards what readers see
	reports []Report
	polled  bool  // Poll ran
	lastErr error // of the last Poll
}

// New returns a monitor of the outboxes of j. It reads nothing yet.
func New(j journal.Journal, opts ...Option) (*Monitor, error) {
	if j == nil {
		return nil, fmt.Errorf("%w: the journal is nil", ErrInvalidOption)
	}
	c := config{page: DefaultDiscoveryPage, top: DefaultTop, now: time.Now}
	for _, opt := range opts {
		if opt != nil {
			opt(&c)
		}
	}
	c.rules = c.rules.withDefaults()
	if err := c.rules.validate(); err != nil {
		return nil, err
	}
	switch {
	case c.page < 0 || c.page > journal.MaxListLimit:
		return nil, fmt.Errorf("%w: discovery page of %d ids, want 0..%d", ErrInvalidOption, c.page, journal.MaxListLimit)
	case c.top < 0:
		return nil, fmt.Errorf("%w: top %d, want 0 or more", ErrInvalidOption, c.top)
	case c.unseen != UnseenCount && c.unseen != UnseenIgnore:
		return nil, fmt.Errorf("%w: unseen %d", ErrInvalidOption, c.unseen)
	case c.now == nil:
		return nil, fmt.Errorf("%w: the clock is nil", ErrInvalidOption)
	}
	m := &Monitor{j: j, cfg: c, boxes: map[string]*outbox{}}
	if c.outboxes != nil {
		m.named = map[string]bool{}
	}
	for _, name := range c.outboxes {
		if err := store.ValidateName(name); err != nil {
			return nil, fmt.Errorf("%w: outbox %w", ErrInvalidOption, err)
		}
		m.named[name] = true
		m.add(name)
	}
	_, lister := j.(journal.StreamLister)
	if !lister && m.all() {
		return nil, fmt.Errorf("%w: %T cannot list its streams (journal.StreamLister): name the outboxes and ignore unseen streams", ErrInvalidOption, j)
	}
	return m, nil
}

// Err returns the error of the last Poll: nil when it read the journal,
// ErrNotPolled before the first.
func (m *Monitor) Err() error {
	m.rmu.RLock()
	defer m.rmu.RUnlock()
	if !m.polled {
		return ErrNotPolled
	}
	return m.lastErr
}

// ErrNotPolled is Err before the first Poll.
var ErrNotPolled = errors.New("monitor: not polled yet")

// all reports whether the monitor reads every outbox of the journal: to
// report them all, or to know every outbox's keys when it counts unseen
// streams (a stream another outbox has a key for is not unseen).
func (m *Monitor) all() bool { return m.named == nil || m.cfg.unseen == UnseenCount }

// reported reports whether outbox name is one the monitor reports.
func (m *Monitor) reported(name string) bool { return m.named == nil || m.named[name] }

// Rules returns the rules the monitor judges by, defaults filled in.
func (m *Monitor) Rules() Rules { return m.cfg.rules }

// add starts watching outbox name (under mu).
func (m *Monitor) add(name string) {
	if _, ok := m.boxes[name]; ok {
		return
	}
	m.boxes[name] = &outbox{name: name, pid: store.PersistenceID(name)}
	m.order = append(m.order, name)
	slices.Sort(m.order)
}

// Poll reads every outbox once, judges each over its window and returns
// the reports, sorted by outbox name. An outbox that cannot be read is
// ERR in its report. The error returned is one that stopped the poll as a
// whole: the journal failed (every outbox is then ERR at this poll), or
// ctx ended (the reports are then the previous poll's).
func (m *Monitor) Poll(ctx context.Context) ([]Report, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.now()
	err := m.poll(ctx, now)
	m.rmu.Lock()
	m.lastErr, m.polled = err, true
	m.rmu.Unlock()
	if err != nil && ctx.Err() != nil {
		return m.Reports(), err
	}
	if err != nil {
		// Nothing could be read: every outbox is ERR at this poll.
		for _, name := range m.order {
			m.boxes[name].push(Figures{Outbox: name, At: now, Err: err}, m.cfg.rules.Window)
		}
	}
	reports := make([]Report, 0, len(m.order))
	for _, name := range m.order {
		if m.reported(name) {
			reports = append(reports, m.boxes[name].report(m.cfg.rules))
		}
	}
	m.rmu.Lock()
	m.reports = reports
	m.rmu.Unlock()
	return m.Reports(), err
}

// Reports returns the reports of the last successful poll (none before
// it). The caller may keep them: they are not changed later.
func (m *Monitor) Reports() []Report {
	m.rmu.RLock()
	defer m.rmu.RUnlock()
	return slices.Clone(m.reports)
}

func (m *Monitor) poll(ctx context.Context, now time.Time) error {
	sources, err := m.discover(ctx)
	if err != nil {
		return err
	}
	heads, err := m.heads(ctx)
	if err != nil {
		return err
	}
	for _, name := range m.order {
		b := m.boxes[name]
		b.refresh(ctx, m.j, heads[b.pid])
	}
	if m.cfg.unseen == UnseenCount {
		m.seeUnseen(sources)
	}
	var positions []journal.Position
	spans := make([][2]int, len(m.order))
	for i, name := range m.order {
		b := m.boxes[name]
		start := len(positions)
		if m.reported(name) {
			positions = b.appendPositions(positions)
		}
		spans[i] = [2]int{start, len(positions)}
	}
	// One read of every outbox's positions: a journal reads them in as
	// few round trips as it can. Two outboxes may share a key; the read
	// wants each id once, so outboxes that share one are read apart, as
	// is a single outbox (no map of its keys to build).
	lagsOf, err := m.readLags(ctx, positions, spans)
	for i, name := range m.order {
		b := m.boxes[name]
		f := b.figures(now)
		if f.Err == nil && f.Found {
			if err != nil {
				f = Figures{Outbox: name, At: now, Err: fmt.Errorf("read the lag: %w", err)}
			} else {
				f.sumLags(lagsOf[i], b.unseen, m.cfg.top)
			}
		}
		b.push(f, m.cfg.rules.Window)
	}
	return ctx.Err()
}

// readLags reads the StreamLags of every outbox's positions, spans[i]
// being outbox i's part of positions, in one call where no id repeats.
func (m *Monitor) readLags(ctx context.Context, positions []journal.Position, spans [][2]int) ([][]journal.StreamLag, error) {
	out := make([][]journal.StreamLag, len(spans))
	filled := 0
	for _, sp := range spans {
		if sp[1] > sp[0] {
			filled++
		}
	}
	apart := filled <= 1 // one outbox to read: no id repeats, no map needed
	var seen map[string]struct{}
	if !apart {
		seen = make(map[string]struct{}, len(positions))
	}
	for _, p := range positions {
		if apart {
			break
		}
		if _, dup := seen[p.PersistenceID]; dup {
			apart = true
			break
		}
		seen[p.PersistenceID] = struct{}{}
	}
	if apart {
		for i, sp := range spans {
			if sp[1] == sp[0] {
				continue
			}
			l, err := journal.ReadStreamLags(ctx, m.j, positions[sp[0]:sp[1]])
			if err != nil {
				return nil, err
			}
			out[i] = l
		}
		return out, nil
	}
	all, err := journal.ReadStreamLags(ctx, m.j, positions)
	if err != nil {
		return nil, err
	}
	owner := make(map[string]int, len(all))
	for i, sp := range spans {
		for _, p := range positions[sp[0]:sp[1]] {
			owner[p.PersistenceID] = i
		}
	}
	for _, l := range all {
		i := owner[l.PersistenceID]
		out[i] = append(out[i], l)
	}
	return out, nil
}

// heads reads the highest sequence number of every outbox's stream, in one
// round trip where the journal can.
func (m *Monitor) heads(ctx context.Context) (map[string]uint64, error) {
	pids := make([]string, len(m.order))
	for i, name := range m.order {
		pids[i] = m.boxes[name].pid
	}
	heads, err := journal.ReadHighest(ctx, m.j, pids)
	if err != nil {
		return nil, fmt.Errorf("monitor: read the outboxes' heads: %w", err)
	}
	return heads, nil
}

// MaxBusy is the largest share of time Run spends polling: after a poll
// that took d, the next one starts no sooner than d/MaxBusy after it
// started, whatever the interval, so that the monitor of very large
// outboxes slows down instead of becoming the load a DBA notices.
const MaxBusy = 0.05

// Run polls at every interval (or slower, see MaxBusy) until ctx ends,
// calling after (when not nil) with each poll's reports, error and
// duration, and returns nil then. A failed poll does not stop it: the
// next one tries again.
func (m *Monitor) Run(ctx context.Context, interval time.Duration, after func([]Report, error, time.Duration)) error {
	if interval <= 0 {
		return fmt.Errorf("%w: interval %v, want more than 0", ErrInvalidOption, interval)
	}
	for {
		start := time.Now()
		reports, err := m.Poll(ctx)
		took := time.Since(start)
		if ctx.Err() != nil {
			return nil
		}
		if after != nil {
			after(reports, err, took)
		}
		next := max(interval, time.Duration(float64(took)/MaxBusy))
		t := time.NewTimer(next - time.Since(start))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}
