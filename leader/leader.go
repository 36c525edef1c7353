package leader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultSessionTimeout is the session timeout unless WithSessionTimeout
// sets another.
const DefaultSessionTimeout = 10 * time.Second

// MinSessionTimeout is the shortest session timeout WithSessionTimeout
// accepts.
const MinSessionTimeout = 100 * time.Millisecond

// MaxOutboxLen bounds an outbox name in bytes, as the store does.
const MaxOutboxLen = 1000

// Option configures Acquire and TryAcquire.
type Option func(*config)

type config struct {
	sessionTimeout time.Duration
}

// WithSessionTimeout sets d, the bound on every wait that a silent network
// loss (no FIN, no RST: a cable, a firewall, a frozen host) would otherwise
// make endless:
//
//   - the server ends the leader's session after d without a word from it
//     (idle_session_timeout), which frees the lock for a standby;
//   - the leader pings every d/5 and declares the lease lost when a ping
//     gets no answer within d/5, so Lost fires within 2d/5 of the loss:
//     before the server can hand the lock to anyone;
//   - a standby's wait is renewed every d (lock_timeout), so a standby
//     whose own connection died leaves the server's lock queue.
//
// Smaller is a faster failover after a silent loss and more pings; a relay
// process that stalls (GC, CPU starvation) for longer than d/5 loses its
// lease. At least MinSessionTimeout. Defaults to DefaultSessionTimeout.
func WithSessionTimeout(d time.Duration) Option {
	return func(c *config) { c.sessionTimeout = d }
}

// candidate is one validated call of Acquire or TryAcquire.
type candidate struct {
	outbox   string
	key      int64
	connCfg  *pgx.ConnConfig
	timeout  time.Duration
	interval time.Duration // keepalive ping interval, and its timeout
}

func newCandidate(pool *pgxpool.Pool, outbox string, opts []Option) (*candidate, error) {
	if pool == nil {
		return nil, &InvalidArgumentError{Field: "pool", Reason: "is nil"}
	}
	if err := ValidateOutbox(outbox); err != nil {
		return nil, err
	}
	c := config{sessionTimeout: DefaultSessionTimeout}
	for _, opt := range opts {
		if opt != nil {
			opt(&c)
		}
	}
	if c.sessionTimeout < MinSessionTimeout {
		return nil, &InvalidArgumentError{Field: "session timeout", Reason: fmt.Sprintf("is %v, below MinSessionTimeout (%v)", c.sessionTimeout, MinSessionTimeout)}
	}
	cand := &candidate{
		outbox:   outbox,
		key:      Key(outbox),
		timeout:  c.sessionTimeout,
		interval: c.sessionTimeout / 5,
		connCfg:  pool.Config().ConnConfig, // a copy
	}
	// The session's own settings, sent in the startup packet. Each is a
	// bound on a wait; statement_timeout is off so that no default of the
	// role's cuts the lock wait short in another way.
	ms := func(d time.Duration) string { return strconv.FormatInt(max(d.Milliseconds(), 1), 10) }
	secs := func(d time.Duration) string { return strconv.FormatInt(max(int64(d/time.Second), 1), 10) }
	params := make(map[string]string, len(cand.connCfg.RuntimeParams)+8)
	for k, v := range cand.connCfg.RuntimeParams {
		params[k] = v
	}
	params["statement_timeout"] = "0"
	params["idle_session_timeout"] = ms(cand.timeout)
	params["lock_timeout"] = ms(cand.timeout)
	params["client_connection_check_interval"] = ms(cand.interval)
	params["tcp_keepalives_idle"] = secs(cand.interval)
	params["tcp_keepalives_interval"] = secs(cand.interval)
	params["tcp_keepalives_count"] = "3"
	params["tcp_user_timeout"] = ms(cand.timeout)
	cand.connCfg.RuntimeParams = params
	return cand, nil
}

// ValidateOutbox checks an outbox name: non-empty valid UTF-8 without NUL
// bytes, at most MaxOutboxLen bytes. The error matches ErrInvalidArgument.
func ValidateOutbox(outbox string) error {
	switch {
	case outbox == "":
		return &InvalidArgumentError{Field: "outbox name", Reason: "is empty"}
	case len(outbox) > MaxOutboxLen:
		return &InvalidArgumentError{Field: "outbox name", Reason: fmt.Sprintf("is %d bytes long, over the limit of %d", len(outbox), MaxOutboxLen)}
	case strings.IndexByte(outbox, 0) >= 0:
		return &InvalidArgumentError{Field: "outbox name", Reason: "contains a NUL byte"}
	case !utf8.ValidString(outbox):
		return &InvalidArgumentError{Field: "outbox name", Reason: "is not valid UTF-8"}
	}
	return nil
}

// Acquire takes the leadership of outbox, waiting as long as another
// session holds it, until ctx is done. It opens a connection of its own
// with the pool's connection config (none of the pool's connections is
// used, so the pool's size and other users are unaffected) and holds a
// session advisory lock on Key(outbox) there until the lease is released
// or lost.
//
// The lock is granted the moment the holder's session ends: at once after
// the holder's Release, process exit, pg_terminate_backend or a server
// restart, and within the session timeout after a silent network loss (see
// WithSessionTimeout). Connection failures while waiting (a server
// restart, a terminated session) are retried with backoff; the first
// connection's failure, a server error other than a lost connection, and
// invalid arguments are returned at once. When ctx ends first, the error
// matches ctx.Err().
func Acquire(ctx context.Context, pool *pgxpool.Pool, outbox string, opts ...Option) (*Lease, error) {
	c, err := newCandidate(pool, outbox, opts)
	if err != nil {
		return nil, err
	}
	backoff := 50 * time.Millisecond
	connected := false
	var last error
	for {
		l, _, everConnected, err := c.attempt(ctx, true)
		connected = connected || everConnected
		if l != nil {
			return l, nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			if last == nil {
				last = err
			}
			if last != nil && !errors.Is(last, ctxErr) {
				return nil, fmt.Errorf("leader: acquire %q: %w (last error: %w)", outbox, ctxErr, last)
			}
			return nil, fmt.Errorf("leader: acquire %q: %w", outbox, ctxErr)
		}
		if !connected || !transient(err) {
			return nil, fmt.Errorf("leader: acquire %q: %w", outbox, err)
		}
		last = err
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, c.timeout/2, 2*time.Second)
	}
}

// TryAcquire is Acquire without waiting: one attempt. ok is false, with a
// nil lease and error, when another session holds the leadership.
func TryAcquire(ctx context.Context, pool *pgxpool.Pool, outbox string, opts ...Option) (l *Lease, ok bool, err error) {
	c, err := newCandidate(pool, outbox, opts)
	if err != nil {
		return nil, false, err
	}
	l, held, _, err := c.attempt(ctx, false)
	if err != nil {
		return nil, false, fmt.Errorf("leader: try acquire %q: %w", outbox, err)
	}
	if held {
		return nil, false, nil
	}
	return l, true, nil
}

// attempt connects and takes the lock, waiting for it if wait. It returns
// the lease, or held when another session has it (without wait), and
// whether a connection was made.
func (c *candidate) attempt(ctx context.Context, wait bool) (l *Lease, held, connected bool, err error) {
	cfg := c.connCfg.Copy()
	var cancelQueries atomic.Bool
	cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &switchHandler{
			useCancel: &cancelQueries,
			// A lock wait is a running statement: a cancelled context asks
			// the server to cancel it (and breaks the connection a second
			// later should the server not answer).
			cancel: &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: time.Second},
			// Waiting for a message on an idle connection: a deadline on the
			// socket, which leaves the connection usable.
			deadline: &pgconn.DeadlineContextWatcherHandler{Conn: pc.Conn()},
		}
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, false, false, err
	}
	closeConn := func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(cctx) // the session ends either way; its lock goes with it
	}
	if !wait {
		var got bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, c.key).Scan(&got); err != nil {
			closeConn()
			return nil, false, true, err
		}
		if !got {
			closeConn()
			return nil, true, true, nil
		}
		return newLease(ctx, c, conn), false, true, nil
	}
	for {
		// The server ends each wait after the session timeout
		// (lock_timeout), so that a standby that can no longer hear the
		// answer leaves the queue; the client gives up after twice that.
		cancelQueries.Store(true)
		qctx, cancel := context.WithTimeout(ctx, 2*c.timeout)
		_, err := conn.Exec(qctx, `SELECT pg_advisory_lock($1)`, c.key)
		cancel()
		cancelQueries.Store(false)
		if err == nil {
			return newLease(ctx, c, conn), false, true, nil
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55P03" && ctx.Err() == nil { // lock_not_available: renew the wait
			continue
		}
		closeConn()
		return nil, false, true, err
	}
}

// transient reports whether err is a lost connection or an unavailable
// server, which a waiting standby retries, rather than a refusal (bad
// credentials, a missing privilege), which it returns.
func transient(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", "57", "53": // connection exception, operator intervention (shutdown, terminate), insufficient resources
			return true
		}
		return false
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) || pgconn.SafeToRetry(err) || strings.Contains(err.Error(), "conn closed")
}

// switchHandler is the context watcher of a lease's connection: a cancel
// request while a statement runs (the lock wait), a socket deadline
// otherwise.
type switchHandler struct {
	useCancel        *atomic.Bool
	cancel, deadline ctxwatch.Handler
	active           ctxwatch.Handler
}

func (h *switchHandler) HandleCancel(ctx context.Context) {
	h.active = h.deadline
	if h.useCancel.Load() {
		h.active = h.cancel
	}
	h.active.HandleCancel(ctx)
}

func (h *switchHandler) HandleUnwatchAfterCancel() {
	if h.active != nil {
		h.active.HandleUnwatchAfterCancel()
		h.active = nil
	}
}
