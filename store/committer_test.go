package store_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/outboxkit/offsetstore/internal/faultjournal"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/store"
)

// flaky wraps a journal for committer tests where faultjournal's counters
// are not enough: a hook may hold or fail each write, and cut makes every
// later call fail, as if the process that used it had died. Wrap it with
// newFlaky, which keeps the wrapped journal's NextAppender and HeadReader,
// so the store takes the path it takes in production.
type flaky struct {
	j journal.Journal

	mu   sync.RWMutex // held shared by every call, exclusively by cut
	dead bool
	hook func(ctx context.Context) error // before every Append and AppendNext
}

var errCut = errors.New("journal cut: the writer crashed")

// newFlaky wraps j. The returned journal implements NextAppender and
// HeadReader exactly when j does.
func newFlaky(j journal.Journal) (journal.Journal, *flaky) {
	f := &flaky{j: j}
	_, next := j.(journal.NextAppender)
	_, head := j.(journal.HeadReader)
	switch {
	case next && head:
		return flakyNextHead{f}, f
	case next:
		return flakyNext{f}, f
	case head:
		return flakyHead{f}, f
	}
	return f, f
}

type (
	flakyNext     struct{ *flaky }
	flakyHead     struct{ *flaky }
	flakyNextHead struct{ *flaky }
)

func (f flakyNext) AppendNext(ctx context.Context, ev journal.Event) error {
	return f.appendNext(ctx, ev)
}
func (f flakyNextHead) AppendNext(ctx context.Context, ev journal.Event) error {
	return f.appendNext(ctx, ev)
}
func (f flakyHead) Head(ctx context.Context, pid string) (journal.Head, error) {
	return f.head(ctx, pid)
}
func (f flakyNextHead) Head(ctx context.Context, pid string) (journal.Head, error) {
	return f.head(ctx, pid)
}

// setHook installs h (nil to remove it).
func (f *flaky) setHook(h func(ctx context.Context) error) {
	f.mu.Lock()
	f.hook = h
	f.mu.Unlock()
}

// cut waits for the calls in progress and makes every later one fail.
func (f *flaky) cut() {
	f.mu.Lock()
	f.dead = true
	f.mu.Unlock()
}

func (f *flaky) enter(ctx context.Context, write bool) (func(), error) {
	f.mu.RLock()
	if f.dead {
		f.mu.RUnlock()
		return nil, errCut
	}
	if write && f.hook != nil {
		if err := f.hook(ctx); err != nil {
			f.mu.RUnlock()
			return nil, err
		}
	}
	return f.mu.RUnlock, nil
}

func (f *flaky) Append(ctx context.Context, events ...journal.Event) error {
	done, err := f.enter(ctx, true)
	if err != nil {
		return err
	}
	defer done()
	return f.j.Append(ctx, events...)
}

func (f *flaky) appendNext(ctx context.Context, ev journal.Event) error {
	done, err := f.enter(ctx, true)
	if err != nil {
		return err
	}
	defer done()
	return f.j.(journal.NextAppender).AppendNext(ctx, ev)
}

func (f *flaky) head(ctx context.Context, pid string) (journal.Head, error) {
	done, err := f.enter(ctx, false)
	if err != nil {
		return journal.Head{}, err
	}
	defer done()
	return f.j.(journal.HeadReader).Head(ctx, pid)
}

func (f *flaky) Replay(ctx context.Context, pid string, from, to, max uint64) iter.Seq2[journal.Event, error] {
	return func(yield func(journal.Event, error) bool) {
		done, err := f.enter(ctx, false)
		if err != nil {
			yield(journal.Event{}, err)
			return
		}
		defer done()
		for ev, err := range f.j.Replay(ctx, pid, from, to, max) {
			if !yield(ev, err) {
				return
			}
		}
	}
}

func (f *flaky) HighestSequenceNr(ctx context.Context, pid string) (uint64, error) {
	done, err := f.enter(ctx, false)
	if err != nil {
		return 0, err
	}
	defer done()
	return f.j.HighestSequenceNr(ctx, pid)
}

func (f *flaky) DeleteTo(ctx context.Context, pid string, to uint64) error {
	done, err := f.enter(ctx, false)
	if err != nil {
		return err
	}
	defer done()
	return f.j.DeleteTo(ctx, pid, to)
}

func (f *flaky) Last(ctx context.Context, pid string) (journal.Event, bool, error) {
	done, err := f.enter(ctx, false)
	if err != nil {
		return journal.Event{}, false, err
	}
	defer done()
	return f.j.Last(ctx, pid)
}

// quiet is a committer configuration that saves only when asked.
var quiet = []store.CommitterOption{store.WithCommitEvery(1 << 30), store.WithCommitInterval(time.Hour)}

func newCommitter(t *testing.T, s *store.Store, opts ...store.CommitterOption) *store.Committer {
	t.Helper()
	c, err := store.NewCommitter(s, opts...)
	if err != nil {
		t.Fatalf("NewCommitter: %v", err)
	}
	return c
}

func flush(t *testing.T, c *store.Committer) {
	t.Helper()
	if err := c.Flush(t.Context()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

// eventually polls cond until it holds, failing the test after 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// committerOp is one call of a gap-rule case.
type committerOp struct {
	track   bool // Track, else Mark
	key     string
	seq     uint64
	wantErr error
}

func mark(key string, seq uint64) committerOp  { return committerOp{key: key, seq: seq} }
func track(key string, seq uint64) committerOp { return committerOp{track: true, key: key, seq: seq} }
func fails(op committerOp, err error) committerOp {
	op.wantErr = err
	return op
}

// committerStep runs ops, flushes, and expects the saved offsets and the
// number of pending tracked sequence numbers.
type committerStep struct {
	ops     []committerOp
	want    map[string]uint64
	pending int
}

func TestCommitterGapRule(t *testing.T) {
	t.Parallel()
	many := func() []committerStep {
		var tracks, outOfOrder, firsts []committerOp
		after2, after3 := map[string]uint64{}, map[string]uint64{}
		for i := range 100 {
			k := fmt.Sprintf("order-%d", i)
			tracks = append(tracks, track(k, 1), track(k, 2), track(k, 3))
			outOfOrder = append(outOfOrder, mark(k, 3), mark(k, 2))
			if i%2 == 0 {
				firsts = append(firsts, mark(k, 1))
				after2[k] = 3
			}
			after3[k] = 3
		}
		var rest []committerOp
		for i := 1; i < 100; i += 2 {
			rest = append(rest, mark(fmt.Sprintf("order-%d", i), 1))
		}
		return []committerStep{
			{ops: tracks, want: map[string]uint64{}, pending: 300},
			{ops: outOfOrder, want: map[string]uint64{}, pending: 100},
			{ops: firsts, want: after2, pending: 50},
			{ops: rest, want: after3, pending: 0},
		}
	}
	cases := []struct {
		name  string
		steps []committerStep
	}{
		{"InOrder", []committerStep{
			{ops: []committerOp{mark("a", 1), mark("a", 2), mark("a", 3)}, want: map[string]uint64{"a": 3}},
			{ops: []committerOp{track("a", 4), mark("a", 4), track("a", 5), mark("a", 5)}, want: map[string]uint64{"a": 5}},
		}},
		{"UntrackedIsHighWaterMark", []committerStep{
			{ops: []committerOp{mark("a", 3), mark("a", 1), mark("a", 2)}, want: map[string]uint64{"a": 3}},
		}},
		{"OutOfOrder", []committerStep{
			{ops: []committerOp{track("a", 1), track("a", 2), track("a", 3), mark("a", 3)}, want: map[string]uint64{}, pending: 2},
			{ops: []committerOp{mark("a", 1)}, want: map[string]uint64{"a": 1}, pending: 1},
			{ops: []committerOp{mark("a", 2)}, want: map[string]uint64{"a": 3}},
		}},
		{"MiddleFirst", []committerStep{
			{ops: []committerOp{track("a", 1), track("a", 2), track("a", 3), track("a", 4), mark("a", 2), mark("a", 3)}, want: map[string]uint64{}, pending: 2},
			{ops: []committerOp{mark("a", 1)}, want: map[string]uint64{"a": 3}, pending: 1},
			{ops: []committerOp{mark("a", 4)}, want: map[string]uint64{"a": 4}},
		}},
		{"Duplicates", []committerStep{
			{ops: []committerOp{track("a", 1), track("a", 1), track("a", 2)}, want: map[string]uint64{}, pending: 2},
			{ops: []committerOp{mark("a", 1), mark("a", 1)}, want: map[string]uint64{"a": 1}, pending: 1},
			{ops: []committerOp{mark("a", 2), mark("a", 2), fails(track("a", 2), store.ErrTrackBehind)}, want: map[string]uint64{"a": 2}},
		}},
		{"LowerMarksIgnored", []committerStep{
			{ops: []committerOp{mark("a", 5), mark("a", 3)}, want: map[string]uint64{"a": 5}},
			{ops: []committerOp{track("a", 6), mark("a", 4), mark("a", 5)}, want: map[string]uint64{"a": 5}, pending: 1},
			{ops: []committerOp{mark("a", 6), mark("a", 2)}, want: map[string]uint64{"a": 6}},
		}},
		{"TrackAfterMark", []committerStep{
			{ops: []committerOp{
				mark("a", 5),
				fails(track("a", 5), store.ErrTrackBehind),
				fails(track("a", 4), store.ErrTrackBehind),
				fails(track("a", 0), store.ErrTrackBehind),
				track("a", 6),
			}, want: map[string]uint64{"a": 5}, pending: 1},
			// 8 is marked untracked above pending 6: 7 cannot be tracked
			// any more, and 8 waits for 6.
			{ops: []committerOp{mark("a", 8), fails(track("a", 7), store.ErrTrackBehind)}, want: map[string]uint64{"a": 5}, pending: 1},
			{ops: []committerOp{mark("a", 6)}, want: map[string]uint64{"a": 8}},
		}},
		{"UntrackedBelowPending", []committerStep{
			{ops: []committerOp{track("a", 5), mark("a", 3)}, want: map[string]uint64{"a": 3}, pending: 1},
			{ops: []committerOp{mark("a", 4)}, want: map[string]uint64{"a": 4}, pending: 1},
			{ops: []committerOp{mark("a", 5)}, want: map[string]uint64{"a": 5}},
		}},
		{"UntrackedInGaps", []committerStep{
			{ops: []committerOp{track("a", 1), track("a", 5), mark("a", 3), mark("a", 7)}, want: map[string]uint64{}, pending: 2},
			{ops: []committerOp{mark("a", 1)}, want: map[string]uint64{"a": 3}, pending: 1},
			{ops: []committerOp{mark("a", 5)}, want: map[string]uint64{"a": 7}},
		}},
		{"TrackedOutOfOrder", []committerStep{
			{ops: []committerOp{track("a", 3), track("a", 1), track("a", 2), mark("a", 1)}, want: map[string]uint64{"a": 1}, pending: 2},
			{ops: []committerOp{mark("a", 3)}, want: map[string]uint64{"a": 1}, pending: 1},
			{ops: []committerOp{mark("a", 2)}, want: map[string]uint64{"a": 3}},
		}},
		{"KeysIndependent", []committerStep{
			{ops: []committerOp{track("a", 1), mark("b", 1), track("c", 2), mark("c", 1)}, want: map[string]uint64{"b": 1, "c": 1}, pending: 2},
		}},
		{"InvalidKeys", []committerStep{
			{ops: []committerOp{
				fails(mark("", 1), store.ErrInvalidKey),
				fails(mark("\xff", 1), store.ErrInvalidKey),
				fails(track("a\x00b", 1), store.ErrInvalidKey),
				fails(mark(string(make([]byte, store.MaxKeyLen+1)), 1), store.ErrInvalidKey),
			}, want: map[string]uint64{}},
		}},
		{"ManyKeys", many()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := open(t, journal.NewMemory(), "gaps")
			c := newCommitter(t, s, quiet...)
			for i, st := range tc.steps {
				for _, op := range st.ops {
					var err error
					if op.track {
						err = c.Track(op.key, op.seq)
					} else {
						err = c.Mark(op.key, op.seq)
					}
					if op.wantErr == nil && err != nil || !errors.Is(err, op.wantErr) {
						t.Fatalf("step %d: %+v = %v, want %v", i, op, err, op.wantErr)
					}
				}
				flush(t, c)
				wantOffsets(t, load(t, s), st.want)
				if got := c.Stats().Pending; got != st.pending {
					t.Fatalf("step %d: %d pending, want %d", i, got, st.pending)
				}
			}
			if err := c.Close(t.Context()); err != nil {
				t.Fatalf("Close: %v", err)
			}
		})
	}
}

func TestCommitterOptions(t *testing.T) {
	t.Parallel()
	s := open(t, journal.NewMemory(), "opts")
	for _, tc := range []struct {
		name string
		opt  store.CommitterOption
	}{
		{"EveryZero", store.WithCommitEvery(0)},
		{"EveryNegative", store.WithCommitEvery(-1)},
		{"IntervalZero", store.WithCommitInterval(0)},
		{"IntervalNegative", store.WithCommitInterval(-time.Second)},
		{"SaveTimeoutZero", store.WithSaveTimeout(0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if c, err := store.NewCommitter(s, tc.opt); !errors.Is(err, store.ErrInvalidOption) || c != nil {
				t.Fatalf("NewCommitter = %v, %v, want ErrInvalidOption", c, err)
			}
		})
	}
	if _, err := store.NewCommitter(nil); !errors.Is(err, store.ErrInvalidOption) {
		t.Fatalf("NewCommitter(nil) = %v, want ErrInvalidOption", err)
	}
	c := newCommitter(t, s, nil, store.WithCommitEvery(1))
	if err := c.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestCommitterTriggers(t *testing.T) {
	t.Parallel()
	t.Run("Count", func(t *testing.T) {
		t.Parallel()
		s := open(t, journal.NewMemory(), "count")
		c := newCommitter(t, s, store.WithCommitEvery(10), store.WithCommitInterval(time.Hour))
		defer c.Close(t.Context())
		for i := range 9 {
			if err := c.Mark(fmt.Sprintf("k%d", i), 1); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(50 * time.Millisecond)
		if w := s.Stats().Writes; w != 0 {
			t.Fatalf("%d writes after 9 of 10 marks", w)
		}
		if err := c.Mark("k9", 1); err != nil {
			t.Fatal(err)
		}
		// The store has the save before the committer counts it.
		eventually(t, "the 10th mark saves", func() bool { return len(load(t, s)) == 10 && c.Stats().Saves > 0 })
		if st := c.Stats(); st.Saves != 1 || st.SavedKeys != 10 {
			t.Fatalf("stats = %+v, want 1 save of 10 keys", st)
		}
	})
	t.Run("Interval", func(t *testing.T) {
		t.Parallel()
		s := open(t, journal.NewMemory(), "interval")
		c := newCommitter(t, s, store.WithCommitEvery(1<<30), store.WithCommitInterval(20*time.Millisecond))
		defer c.Close(t.Context())
		if err := c.Mark("a", 7); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the interval saves", func() bool { return load(t, s)["a"] == 7 })
	})
	t.Run("OnlyChangedKeys", func(t *testing.T) {
		t.Parallel()
		s := open(t, journal.NewMemory(), "changed")
		c := newCommitter(t, s, quiet...)
		defer c.Close(t.Context())
		for i := range 100 {
			if err := c.Mark(fmt.Sprintf("k%d", i), 1); err != nil {
				t.Fatal(err)
			}
		}
		flush(t, c)
		for _, op := range []committerOp{mark("k1", 2), mark("k2", 1), track("k3", 2), mark("k4", 3)} {
			if op.track {
				_ = c.Track(op.key, op.seq)
			} else {
				_ = c.Mark(op.key, op.seq)
			}
		}
		flush(t, c)
		flush(t, c) // nothing moved: no save
		if st := c.Stats(); st.Saves != 2 || st.SavedKeys != 102 || st.Unsaved != 0 {
			t.Fatalf("stats = %+v, want 2 saves of 100 and 2 keys, nothing unsaved", st)
		}
		if w := s.Stats().Writes; w != 2 {
			t.Fatalf("%d snapshots written, want 2", w)
		}
	})
	t.Run("MarksDuringSaveGoIntoTheNext", func(t *testing.T) {
		t.Parallel()
		j, f := newFlaky(journal.NewMemory())
		s := open(t, j, "during")
		c := newCommitter(t, s, quiet...)
		defer c.Close(t.Context())
		entered, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		f.setHook(func(ctx context.Context) error {
			once.Do(func() {
				close(entered)
				<-release
			})
			return nil
		})
		if err := c.Mark("a", 1); err != nil {
			t.Fatal(err)
		}
		first := make(chan error, 1)
		go func() { first <- c.Flush(t.Context()) }()
		<-entered // the save is in flight, held in the journal
		marked := make(chan error, 1)
		go func() {
			for seq := uint64(2); seq <= 1000; seq++ {
				if err := c.Mark("a", seq); err != nil {
					marked <- err
					return
				}
			}
			marked <- c.Mark("b", 1)
		}()
		select {
		case err := <-marked:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Mark blocked on the save in flight")
		}
		close(release)
		if err := <-first; err != nil {
			t.Fatalf("first Flush: %v", err)
		}
		wantOffsets(t, load(t, s), map[string]uint64{"a": 1})
		flush(t, c)
		wantOffsets(t, load(t, s), map[string]uint64{"a": 1000, "b": 1})
	})
	t.Run("ConcurrentMarks", func(t *testing.T) {
		t.Parallel()
		s := open(t, journal.NewMemory(), "concurrent")
		c := newCommitter(t, s, store.WithCommitEvery(100), store.WithCommitInterval(time.Millisecond))
		var wg sync.WaitGroup
		want := map[string]uint64{}
		for g := range 8 {
			k := fmt.Sprintf("g%d", g)
			want[k] = 2000
			wg.Go(func() {
				for seq := uint64(1); seq <= 2000; seq += 2 {
					_ = c.Track(k, seq)
					_ = c.Track(k, seq+1)
					_ = c.Mark(k, seq+1)
					_ = c.Mark(k, seq)
				}
			})
		}
		wg.Wait()
		if err := c.Close(t.Context()); err != nil {
			t.Fatalf("Close: %v", err)
		}
		wantOffsets(t, load(t, s), want)
		if c.Stats().Pending != 0 {
			t.Fatalf("%d pending after every mark", c.Stats().Pending)
		}
	})
}

// TestCommitterMarkAllocations is not parallel: AllocsPerRun.
func TestCommitterMarkAllocations(t *testing.T) {
	c := newCommitter(t, open(t, journal.NewMemory(), "allocs"), quiet...)
	defer c.Close(t.Context())
	seq := uint64(0)
	_ = c.Mark("order-1", 1)
	_ = c.Track("order-2", 1)
	if n := testing.AllocsPerRun(1000, func() { seq++; _ = c.Mark("order-1", seq+1) }); n != 0 {
		t.Fatalf("Mark of a known key: %v allocations", n)
	}
	// Tracked in order: the pending buffer is reused.
	s2 := uint64(1)
	if n := testing.AllocsPerRun(1000, func() {
		s2++
		_ = c.Track("order-2", s2)
		_ = c.Mark("order-2", s2-1)
	}); n != 0 {
		t.Fatalf("Track and Mark in order: %v allocations", n)
	}
}

// TestCommitterCloseSavesEverything is not parallel: goleak checks that
// Close stops the goroutine.
func TestCommitterCloseSavesEverything(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	j := journal.NewMemory()
	s := open(t, j, "close")
	c := newCommitter(t, s, quiet...)
	want := map[string]uint64{}
	for i := range 500 {
		k := fmt.Sprintf("k%d", i)
		want[k] = uint64(i + 1)
		if err := c.Mark(k, uint64(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wantOffsets(t, load(t, open(t, j, "close")), want)
	for name, call := range map[string]func() error{
		"Mark":  func() error { return c.Mark("k1", 1000) },
		"Track": func() error { return c.Track("k1", 1000) },
		"Flush": func() error { return c.Flush(t.Context()) },
		"Close": func() error { return c.Close(t.Context()) },
		"Err":   c.Err,
	} {
		if err := call(); !errors.Is(err, store.ErrClosed) {
			t.Fatalf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	c = nil // dropped after Close: nothing is left running
	runtime.GC()
}

// TestCommitterDroppedStops is not parallel (goleak): a committer dropped
// without Close stops its goroutine once collected, and saves nothing more.
func TestCommitterDroppedStops(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s := open(t, journal.NewMemory(), "dropped")
	func() {
		c := newCommitter(t, s, quiet...)
		if err := c.Mark("a", 1); err != nil {
			t.Fatal(err)
		}
	}()
	for range 5 {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	wantOffsets(t, load(t, s), map[string]uint64{})
}

// TestCommitterCloseTimeout is not parallel (goleak): a Close whose ctx
// ends while the final save hangs stops the goroutine and says what is
// lost.
func TestCommitterCloseTimeout(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	j, f := newFlaky(journal.NewMemory())
	s := open(t, j, "hang")
	c := newCommitter(t, s, quiet...)
	f.setHook(func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})
	_ = c.Mark("a", 1)
	_ = c.Mark("b", 1)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	err := c.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want the deadline", err)
	}
	if want := "2 keys not saved"; !strings.Contains(err.Error(), want) {
		t.Fatalf("Close = %q, want it to say %q", err, want)
	}
	if err := c.Mark("a", 2); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Mark after Close = %v, want ErrClosed", err)
	}
}

// TestCommitterSaveTimeout: a save that hangs fails at the save timeout,
// is reported, and the retry saves.
func TestCommitterSaveTimeout(t *testing.T) {
	t.Parallel()
	j, f := newFlaky(journal.NewMemory())
	s := open(t, j, "slow")
	c := newCommitter(t, s, store.WithCommitEvery(1), store.WithCommitInterval(10*time.Millisecond), store.WithSaveTimeout(50*time.Millisecond))
	var first atomic.Bool
	f.setHook(func(ctx context.Context) error {
		if first.CompareAndSwap(false, true) {
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	})
	_ = c.Mark("a", 1)
	eventually(t, "the hung save times out", func() bool { return errors.Is(c.Err(), context.DeadlineExceeded) })
	eventually(t, "the retry saves", func() bool { return c.Err() == nil && load(t, s)["a"] == 1 })
	if err := c.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestCommitterRecoversOnMemory is not parallel (goleak).
func TestCommitterRecoversOnMemory(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	testRecovers(t, journal.NewMemory())
}

func TestCommitterRecoversOnPostgres(t *testing.T) {
	t.Parallel()
	testRecovers(t, postgresJournal(t))
}

// testRecovers: a journal that fails 3 writes, then works (and then loses
// one acknowledgement, which the store adopts). The committer
// retries by itself with growing delays, Err reports the failure until a
// save succeeds, and nothing is lost.
func testRecovers(t *testing.T, base journal.Journal) {
	fj := faultjournal.New(base)
	fj.FailBeforeCommit.Store(3)
	j, f := newFlaky(fj)
	s := open(t, j, "recovers")
	const interval = 20 * time.Millisecond
	c := newCommitter(t, s, store.WithCommitEvery(1), store.WithCommitInterval(interval))
	var (
		mu    sync.Mutex
		times []time.Time
	)
	f.setHook(func(context.Context) error {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		return nil
	})
	if err := c.Mark("a", 1); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Err reports the failed save", func() bool { return errors.Is(c.Err(), faultjournal.ErrInjected) })
	// Marks go on while saves fail; a Flush reports the failure.
	if err := c.Mark("a", 2); err != nil {
		t.Fatalf("Mark while saves fail: %v", err)
	}
	eventually(t, "a save succeeds and Err clears", func() bool { return c.Err() == nil && load(t, s)["a"] == 2 })
	if st := c.Stats(); st.SaveErrors != 3 {
		t.Fatalf("stats = %+v, want 3 save errors", st)
	}
	mu.Lock()
	// Attempts after the first failure wait at least interval, 2×, 4×.
	for i := 1; i < 4 && i < len(times); i++ {
		if gap, min := times[i].Sub(times[i-1]), interval<<(i-1); gap < min {
			t.Errorf("attempt %d came %v after the previous one, want at least %v", i+1, gap, min)
		}
	}
	mu.Unlock()
	fj.FailAfterCommit.Store(1)
	if err := c.Mark("b", 1); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wantOffsets(t, load(t, open(t, base, "recovers")), map[string]uint64{"a": 2, "b": 1})
	if st := c.Stats(); st.SaveErrors != 3 {
		t.Fatalf("stats = %+v, want the lost acknowledgement adopted, not failed", st)
	}
}

func TestCommitterFlushReportsFailure(t *testing.T) {
	t.Parallel()
	fj := faultjournal.New(journal.NewMemory())
	s := open(t, fj, "flushfail")
	c := newCommitter(t, s, quiet...)
	fj.FailBeforeCommit.Store(1)
	_ = c.Mark("a", 1)
	if err := c.Flush(t.Context()); !errors.Is(err, faultjournal.ErrInjected) {
		t.Fatalf("Flush with a failing journal = %v, want the journal's error", err)
	}
	if err := c.Err(); !errors.Is(err, faultjournal.ErrInjected) {
		t.Fatalf("Err = %v, want the journal's error", err)
	}
	flush(t, c) // the failed batch is saved by the next attempt
	if err := c.Err(); err != nil {
		t.Fatalf("Err after a successful Flush = %v", err)
	}
	wantOffsets(t, load(t, s), map[string]uint64{"a": 1})
	if err := c.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestCommitterFencedOnMemory is not parallel (goleak: fencing stops the
// goroutine).
func TestCommitterFencedOnMemory(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	testFenced(t, journal.NewMemory())
}

func TestCommitterFencedOnPostgres(t *testing.T) {
	t.Parallel()
	testFenced(t, postgresJournal(t))
}

func testFenced(t *testing.T, j journal.Journal) {
	s := open(t, j, "fenced")
	c := newCommitter(t, s, store.WithCommitEvery(1), store.WithCommitInterval(5*time.Millisecond))
	if err := c.Mark("a", 1); err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	// Another relay takes the outbox over and saves.
	save(t, open(t, j, "fenced"), map[string]uint64{"a": 10})
	_ = c.Mark("a", 2)
	eventually(t, "the committer is fenced", func() bool { return errors.Is(c.Err(), store.ErrFenced) })
	var fe *store.FencedError
	if !errors.As(c.Err(), &fe) {
		t.Fatalf("Err = %v, want a *FencedError", c.Err())
	}
	for range 2 { // still fenced the second time round
		for name, call := range map[string]func() error{
			"Mark":  func() error { return c.Mark("a", 3) },
			"Track": func() error { return c.Track("a", 4) },
			"Flush": func() error { return c.Flush(t.Context()) },
			"Close": func() error { return c.Close(t.Context()) },
			"Err":   c.Err,
		} {
			if err := call(); !errors.Is(err, store.ErrFenced) {
				t.Fatalf("%s after fencing = %v, want ErrFenced", name, err)
			}
		}
	}
	wantOffsets(t, load(t, open(t, j, "fenced")), map[string]uint64{"a": 10})
}

// TestCommitterPermanentErrors: an error a retry cannot cure stops the
// committer at once, like fencing.
func TestCommitterPermanentErrors(t *testing.T) {
	t.Parallel()
	j, f := newFlaky(journal.NewMemory())
	s := open(t, j, "permanent")
	c := newCommitter(t, s, quiet...)
	f.setHook(func(context.Context) error {
		return &journal.InvalidArgumentError{Field: "payload", Reason: "refused by the test"}
	})
	_ = c.Mark("a", 1)
	if err := c.Flush(t.Context()); !errors.Is(err, journal.ErrInvalidArgument) {
		t.Fatalf("Flush = %v, want ErrInvalidArgument", err)
	}
	f.setHook(nil) // a retry would succeed now, but there is none
	if err := c.Mark("a", 2); !errors.Is(err, journal.ErrInvalidArgument) {
		t.Fatalf("Mark after a permanent error = %v", err)
	}
	if err := c.Close(t.Context()); !errors.Is(err, journal.ErrInvalidArgument) {
		t.Fatalf("Close after a permanent error = %v", err)
	}
	if got := load(t, s); len(got) != 0 {
		t.Fatalf("offsets = %v, want none saved", got)
	}
}

// TestCommitterPendingReleased: memory follows what is pending, not history.
func TestCommitterPendingReleased(t *testing.T) {
	t.Parallel()
	s := open(t, journal.NewMemory(), "memory")
	c := newCommitter(t, s, quiet...)
	defer c.Close(t.Context())
	const n = 5_000
	for seq := uint64(1); seq <= n; seq++ {
		if err := c.Track("a", seq); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, i := range rng.Perm(n) {
		if err := c.Mark("a", uint64(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, c)
	wantOffsets(t, load(t, s), map[string]uint64{"a": n})
	if st := c.Stats(); st.Pending != 0 || st.Keys != 1 || st.Unsaved != 0 {
		t.Fatalf("stats = %+v, want nothing pending or unsaved, one key", st)
	}
}
