package testdb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outboxkit/offsetstore/internal/faultproxy"
	"github.com/outboxkit/offsetstore/internal/localpg"
	"github.com/outboxkit/offsetstore/migrations"
)

// Replicated is a primary and a standby streaming from it, for the tests
// of failover: two PostgreSQL servers of one database, each in a slot of
// its own (slot 0 and slot 1), the standby a copy of the primary made with
// pg_basebackup -R. By default the standby is synchronous
// (synchronous_standby_names '*'): a commit on the primary returns once the
// standby has it (synchronous_commit on, or as WithSynchronousCommit
// says).
//
// Clients reach the servers through a fault proxy per slot (Proxy), which
// forwards to whatever node the slot holds, so that URL stays the same
// across failovers: a multi-host URL of both proxies with
// target_session_attrs=read-write, on which pgx connects to the primary.
//
// # Backends
//
// With Docker (as testdb chooses it: $OFFSETSTORE_TEST_BACKEND, else a
// Docker engine that answers), each node is a container of
// $OFFSETSTORE_TEST_IMAGE on a Docker network of the pair's own; the
// standby runs pg_basebackup in its container before the image's entrypoint
// starts the server, so any image that keeps the official image's
// contract (POSTGRES_* variables, /docker-entrypoint-initdb.d, the
// entrypoint running a command other than postgres as it is) will do.
// Without Docker, each node is a server of the local binaries (package
// localpg). $OFFSETSTORE_TEST_DATABASE_URL is not used: a pair needs
// servers of its own.
//
// # Faults
//
// KillPrimary kills the primary at once (SIGKILL of its container, or of
// the local server's processes); Promote makes the standby the primary;
// AddStandby builds a new standby from the primary in the empty slot;
// Failover does the three. StopStandby and StartStandby stop and start the
// standby (a clean stop). DemotePrimary fences the primary without
// stopping it (read-only) and promotes the standby. Proxy(i).ResetAll cuts
// every client connection of slot i.
type Replicated struct {
	// URL connects to the database through both slots' proxies, as the
	// database's owner, a superuser: postgres://…@127.0.0.1:p0,127.0.0.1:p1/
	// offsetstore?target_session_attrs=read-write&….
	URL string
	// Backend is where the nodes run: BackendContainer or BackendLocal.
	Backend Backend
	// Image is the container image, empty for the local backend.
	Image string
	// Synchronous is false with WithAsynchronousStandby.
	Synchronous bool

	be    replicaBackend
	slots [2]*replicaSlot

	mu      sync.Mutex
	primary int  // the primary's slot
	standby bool // the other slot holds a standby (running or stopped)
	down    bool // the standby is stopped
	dead    bool // the primary was killed
	demoted bool // the other slot holds the primary DemotePrimary made read-only
}

// replicaSlot is one slot: its proxy, and its node (nil while empty).
type replicaSlot struct {
	name  string // network alias of its node
	proxy *faultproxy.Proxy
	node  replicaNode
}

// replicaNode is one server of a pair.
type replicaNode interface {
	// url connects to the database directly, as its superuser.
	url() string
	// addr is the host:port the slot's proxy forwards to.
	addr() string
	kill(ctx context.Context) error
	stop(ctx context.Context) error
	start(ctx context.Context) error
	remove(ctx context.Context) error
	String() string
}

// replicaBackend makes the nodes of a pair.
type replicaBackend interface {
	// startPrimary starts the first primary in slot, with the pair's
	// settings.
	startPrimary(ctx context.Context, slot string) (replicaNode, error)
	// startStandby starts a standby in slot of primary, which is in
	// primarySlot, with the same settings.
	startStandby(ctx context.Context, slot string, primary replicaNode, primarySlot string) (replicaNode, error)
	close(ctx context.Context)
}

// ReplicatedOption configures NewReplicated.
type ReplicatedOption func(*replicatedConfig)

type replicatedConfig struct {
	async      bool
	syncCommit string
}

// WithAsynchronousStandby makes the standby asynchronous
// (an empty synchronous_standby_names): commits on the primary return without
// waiting for it. Defaults to a synchronous standby.
func WithAsynchronousStandby() ReplicatedOption {
	return func(c *replicatedConfig) { c.async = true }
}

// WithSynchronousCommit sets the servers' synchronous_commit (on,
// remote_apply, remote_write, local, off). Defaults to on.
func WithSynchronousCommit(level string) ReplicatedOption {
	return func(c *replicatedConfig) { c.syncCommit = level }
}

// replicaDatabase is the pair's database, replicaUser its owner.
const (
	replicaDatabase = "offsetstore"
	replicaUser     = "offsetstore"
)

// settings are the server settings of every node of a pair, given on
// its command line.
func (c replicatedConfig) settings() []string {
	return []string{
		"max_connections=200",
		// WAL kept for a standby stopped a while, which has no slot.
		"wal_keep_size=512MB",
	}
}

// replicationSettings are set with ALTER SYSTEM on the first primary, once
// its database is made and migrated (with a synchronous standby named on
// the command line, the bootstrap server of an image would wait for one
// at its CREATE DATABASE), and so copied to every standby with the data.
func (c replicatedConfig) replicationSettings() [][2]string {
	names := "*"
	if c.async {
		names = ""
	}
	return [][2]string{{"synchronous_standby_names", names}, {"synchronous_commit", c.syncCommit}}
}

// NewReplicated starts a pair for t: a primary in slot 0 with the
// migrations applied, and a standby of it in slot 1 that streams (and is
// synchronous, by default). Everything is removed when t ends. It fails the
// test when no pair can be had, and skips it under -short.
func NewReplicated(t testing.TB, opts ...ReplicatedOption) *Replicated {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs two PostgreSQL servers; skipped with -short")
	}
	cfg := replicatedConfig{syncCommit: "on"}
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r, err := startReplicated(ctx, cfg)
	if r != nil {
		t.Cleanup(r.close)
	}
	if err != nil {
		t.Fatalf("testdb: no replicated pair for the test: %v\n"+
			"Make a Docker engine available (the image is $%s, default %s), "+
			"or %s ($%s=local uses them even where Docker answers).",
			err, EnvImage, DefaultImage, localpg.InstallHint, EnvBackend)
	}
	pairOnce.Do(func() { fmt.Fprintf(os.Stderr, "testdb: backend: %s (replicated pairs)\n", r.describe()) })
	return r
}

// pairOnce prints the backend of the first pair of a test binary.
var pairOnce sync.Once

// describe names the backend of the pair as Server.String does.
func (r *Replicated) describe() string {
	if r.Backend == BackendContainer {
		return "container " + r.Image
	}
	if n, ok := r.slots[r.primary].node.(*localNode); ok {
		return "local binaries: " + n.s.Binaries.String()
	}
	return string(r.Backend)
}

func startReplicated(ctx context.Context, cfg replicatedConfig) (*Replicated, error) {
	b, _, err := chooseBackend(ctx)
	if err != nil {
		return nil, err
	}
	r := &Replicated{Backend: b, Synchronous: !cfg.async}
	for i := range r.slots {
		p, err := faultproxy.Start("")
		if err != nil {
			r.close()
			return nil, fmt.Errorf("start the proxy of slot %d: %w", i, err)
		}
		r.slots[i] = &replicaSlot{name: "pg" + strconv.Itoa(i), proxy: p}
	}
	if b == BackendContainer {
		r.be, err = newContainerReplicas(ctx, cfg)
		if c, ok := r.be.(*containerReplicas); ok {
			r.Image = c.image
		}
	} else {
		r.be = &localReplicas{settings: cfg.settings()}
	}
	if err != nil {
		return r, err
	}
	first, err := r.be.startPrimary(ctx, r.slots[0].name)
	if err != nil {
		return r, err
	}
	r.setNode(0, first)
	if err := migrations.Up(ctx, first.url()); err != nil {
		return r, fmt.Errorf("migrate the primary: %w", err)
	}
	err = withConn(ctx, first.url(), func(c *pgx.Conn) error {
		for _, kv := range cfg.replicationSettings() {
			// ALTER SYSTEM takes no parameters; the values are this file's.
			if _, err := c.Exec(ctx, `ALTER SYSTEM SET `+kv[0]+` = '`+kv[1]+`'`); err != nil {
				return err
			}
		}
		_, err := c.Exec(ctx, `SELECT pg_reload_conf()`)
		return err
	})
	if err != nil {
		return r, fmt.Errorf("set up replication on the primary: %w", err)
	}
	r.URL, err = r.multiHostURL(first.url())
	if err != nil {
		return r, err
	}
	if err := r.AddStandby(ctx); err != nil {
		return r, err
	}
	return r, nil
}

// multiHostURL is base (a node's URL) pointed at both proxies, with
// target_session_attrs=read-write and a connect timeout.
func (r *Replicated) multiHostURL(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("parse a node's URL: %w", err)
	}
	u.Host = r.slots[0].proxy.Addr() + "," + r.slots[1].proxy.Addr()
	q := u.Query()
	q.Set("target_session_attrs", "read-write")
	q.Set("connect_timeout", "5")
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func (r *Replicated) setNode(i int, n replicaNode) {
	r.slots[i].node = n
	if n == nil {
		r.slots[i].proxy.SetTarget("")
		return
	}
	r.slots[i].proxy.SetTarget(n.addr())
}

// String describes the pair.
func (r *Replicated) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var parts []string
	for i, s := range r.slots {
		role := "empty"
		switch {
		case s.node == nil:
		case i == r.primary && r.dead:
			role = "killed primary"
		case i == r.primary:
			role = "primary"
		case r.demoted:
			role = "demoted primary, read-only"
		case r.down:
			role = "stopped standby"
		default:
			role = "standby"
		}
		d := fmt.Sprintf("slot %d (%s, proxy %s)", i, role, s.proxy.Addr())
		if s.node != nil {
			d += ": " + s.node.String()
		}
		parts = append(parts, d)
	}
	return strings.Join(parts, "; ")
}

// Proxy returns the fault proxy of slot i (0 or 1): every client
// connection of URL to that slot passes through it.
func (r *Replicated) Proxy(i int) *faultproxy.Proxy { return r.slots[i].proxy }

// PrimarySlot returns the slot of the primary.
func (r *Replicated) PrimarySlot() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.primary
}

// PrimaryURL connects to the primary directly (not through its proxy), as
// the superuser.
func (r *Replicated) PrimaryURL() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.slots[r.primary].node.url()
}

// StandbyURL connects to the standby directly, as the superuser; "" when
// there is none.
func (r *Replicated) StandbyURL() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.standby {
		return ""
	}
	return r.slots[1-r.primary].node.url()
}

// ErrNoStandby is returned by the controls that need a standby when the
// pair has none (after Promote, before AddStandby).
var ErrNoStandby = errors.New("testdb: the pair has no standby")

// WaitStreaming waits until the standby streams from the primary (and,
// for a synchronous pair, is synchronous and has confirmed every commit
// that waited for it).
func (r *Replicated) WaitStreaming(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.waitStreaming(ctx)
}

func (r *Replicated) waitStreaming(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return withConn(ctx, r.slots[r.primary].node.url(), func(c *pgx.Conn) error {
		for {
			var n int
			err := c.QueryRow(ctx, `SELECT count(*) FROM pg_stat_replication
				 WHERE state = 'streaming' AND ($1 OR sync_state IN ('sync', 'quorum'))`, !r.Synchronous).Scan(&n)
			if err != nil {
				return fmt.Errorf("testdb: read pg_stat_replication: %w", err)
			}
			if n > 0 && r.Synchronous {
				// Commits that began to wait before the standby became
				// synchronous, for WAL it already has, are released at its
				// next report, which comes when it receives WAL, else after
				// wal_receiver_status_interval (10 s). A commit now sends
				// WAL; its wait ends with theirs.
				if _, err := c.Exec(ctx, `SELECT pg_logical_emit_message(true, 'testdb', 'standby streams')`); err != nil {
					return fmt.Errorf("testdb: a commit on the standby's primary: %w", err)
				}
			}
			if n > 0 {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("testdb: the standby does not stream: %w", ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
}

// withConn runs f on a connection of its own to url.
func withConn(ctx context.Context, url string, f func(c *pgx.Conn) error) error {
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("testdb: connect: %w", err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	return f(c)
}

// waitAccepting waits until the server at url answers a query.
func waitAccepting(ctx context.Context, url string, exited <-chan struct{}) error {
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := withConn(cctx, url, func(c *pgx.Conn) error { return c.Ping(cctx) })
		cancel()
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("testdb: the server does not accept connections: %w (last: %v)", ctx.Err(), last)
		case <-exited:
			return fmt.Errorf("testdb: the server exited before it accepted connections (last: %v)", last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (r *Replicated) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range r.slots {
		if s == nil {
			continue
		}
		s.proxy.Close()
		if s.node != nil {
			wg.Go(func() { _ = s.node.remove(ctx) })
		}
	}
	wg.Wait()
	if r.be != nil {
		r.be.close(ctx)
	}
}

// hostPort joins host and port.
func hostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }
