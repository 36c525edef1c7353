package leader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Lease is the leadership of one outbox, held by a session advisory lock
// on a connection of its own. It is safe for concurrent use.
//
// A goroutine watches the connection: it waits for the server's next
// message, which returns the moment the server ends the session (the
// FATAL of pg_terminate_backend or a shutdown, or the closed socket of a
// crash), and pings every session timeout / 5 to catch a silent loss. On
// loss, Lost is closed and Context is cancelled at once, Err says why, and
// the connection is closed.
type Lease struct {
	outbox string
	key    int64
	pid    uint32
	conn   *pgx.Conn

	timeout  time.Duration // the session timeout (WithSessionTimeout)
	interval time.Duration

	ctx    context.Context
	cancel context.CancelCauseFunc
	lost   chan struct{}
	stop   context.CancelFunc // stops the watcher
	done   chan struct{}      // closed when the watcher has returned

	mu       sync.Mutex
	err      error
	released atomic.Bool
}

func newLease(ctx context.Context, c *candidate, conn *pgx.Conn) *Lease {
	l := &Lease{
		outbox:   c.outbox,
		key:      c.key,
		pid:      conn.PgConn().PID(),
		conn:     conn,
		timeout:  c.timeout,
		interval: c.interval,
		lost:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	l.ctx, l.cancel = context.WithCancelCause(context.WithoutCancel(ctx))
	watchCtx, stop := context.WithCancel(context.Background())
	l.stop = stop
	go l.watch(watchCtx)
	return l
}

// Outbox returns the outbox this lease leads.
func (l *Lease) Outbox() string { return l.outbox }

// Key returns the advisory lock key held (Key(l.Outbox())).
func (l *Lease) Key() int64 { return l.key }

// BackendPID returns the server process id of the lease's session, as
// pg_stat_activity and pg_locks show it.
func (l *Lease) BackendPID() uint32 { return l.pid }

// SessionTimeout returns the session timeout the lease was taken with
// (WithSessionTimeout): the bound on a silent network loss, to which
// callers tie bounds of their own (the reference relay bounds its
// transactions with it).
func (l *Lease) SessionTimeout() time.Duration { return l.timeout }

// Lost returns a channel closed as soon as the lease is lost: the session
// ended without Release. It is not closed by Release.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// Context returns a context cancelled when the lease is lost or released,
// with Err as its cause. Run the publishing under it. It carries the
// values of the context given to Acquire, not its cancellation.
func (l *Lease) Context() context.Context { return l.ctx }

// Err returns nil while the lease is held, a *LostError (matching ErrLost)
// once it is lost, and ErrReleased after Release.
func (l *Lease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Release gives the leadership up: it stops the watcher, unlocks, and
// closes the connection, so that a waiting standby takes over at once. It
// returns nil on a lease already lost or released, and when the session
// turns out to be gone already (terminated, or its connection closed
// under it, which the watcher had not yet noticed): the lock went with it.
// Another error means the unlock could not be confirmed; the connection is closed anyway, and the
// server frees the lock when the session ends (at once, or within the
// session timeout if the network is gone).
func (l *Lease) Release(ctx context.Context) error {
	if l.released.Swap(true) {
		return nil
	}
	l.stop()
	<-l.done
	l.mu.Lock()
	if l.err != nil { // lost before
		l.mu.Unlock()
		return nil
	}
	l.err = ErrReleased
	l.mu.Unlock()
	l.cancel(ErrReleased)

	var unlocked bool
	err := l.conn.QueryRow(ctx, `SELECT pg_advisory_unlock($1)`, l.key).Scan(&unlocked)
	gone := err != nil && (sessionGone(err) || l.conn.IsClosed())
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	closeErr := l.conn.Close(cctx)
	switch {
	case gone:
		return nil
	case err != nil:
		return fmt.Errorf("leader: release %q: %w", l.outbox, err)
	case !unlocked:
		return fmt.Errorf("leader: release %q: the session did not hold the lock", l.outbox)
	case closeErr != nil:
		return fmt.Errorf("leader: release %q: close: %w", l.outbox, closeErr)
	}
	return nil
}

// watch keeps the connection busy waiting for the server, pinging it when
// it stays quiet, until the session ends or Release stops it.
func (l *Lease) watch(ctx context.Context) {
	defer close(l.done)
	for {
		wctx, cancel := context.WithTimeout(ctx, l.interval)
		err := l.conn.PgConn().WaitForNotification(wctx)
		cancel()
		if ctx.Err() != nil {
			return // released
		}
		if err == nil {
			continue // a notification: nobody should send one; go on waiting
		}
		if !errors.Is(err, context.DeadlineExceeded) || l.conn.IsClosed() {
			l.lose(err)
			return
		}
		// Quiet for an interval: make sure the server still hears us. The
		// ping is not cut short by Release (which waits for it, at most an
		// interval), so that the connection stays usable for the unlock.
		pctx, cancel := context.WithTimeout(context.Background(), l.interval)
		err = l.conn.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			l.lose(fmt.Errorf("keepalive ping: %w", err))
			return
		}
	}
}

func (l *Lease) lose(cause error) {
	err := &LostError{Outbox: l.outbox, Err: cause}
	l.mu.Lock()
	l.err = err
	l.mu.Unlock()
	l.cancel(err)
	close(l.lost)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = l.conn.Close(ctx) // the session is gone or going; its error is the cause above
}

// sessionGone reports whether err says the session itself has ended: the
// server terminated it (SQLSTATE class 57, operator intervention, or 08,
// connection exception), or the connection is closed.
func sessionGone(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "57") || strings.HasPrefix(pgErr.Code, "08")
	}
	return pgconn.SafeToRetry(err) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
