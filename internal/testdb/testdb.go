// Package testdb gives integration tests a real PostgreSQL: one server per
// test binary, the migrations applied once to a template database, and a
// fresh database cloned from it for every test.
//
// # Backends
//
// The server comes from, in this order:
//
//  1. OFFSETSTORE_TEST_DATABASE_URL, an existing server, when it is set;
//  2. a container (testcontainers-go) when a Docker engine answers: the
//     engine of $DOCKER_HOST when that is set (and none other), else the
//     one testcontainers-go finds;
//  3. a throwaway server from PostgreSQL's binaries on this machine
//     (package localpg: initdb and postgres on PATH, under
//     /usr/lib/postgresql/*/bin or in $OFFSETSTORE_PG_BIN, the newest).
//
// With none of them, integration tests fail with a message that says what
// to install or set; they never skip silently. With -short they skip. The
// backend used is printed on standard error once per test binary
// ("testdb: backend: …").
//
// # Environment
//
//	OFFSETSTORE_TEST_DATABASE_URL  use this server; the role must be allowed
//	                               to CREATE DATABASE
//	OFFSETSTORE_TEST_BACKEND       auto (default: Docker, else local binaries),
//	                               container (Docker only) or local (local
//	                               binaries only, even when Docker answers)
//	OFFSETSTORE_TEST_IMAGE         the container image (default postgres:17-alpine)
//	OFFSETSTORE_PG_BIN             the directory of initdb and postgres, for local
//	OFFSETSTORE_TEST_CITUS         skip: deselect the Citus suites (see Cluster)
//
// # Replicated pairs
//
// NewReplicated gives a test a primary and a standby of its own (on the
// same backend choice, Docker or the local binaries), with fault controls
// for failover tests: see Replicated.
//
// # Use
//
//	func TestMain(m *testing.M) { testdb.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		db := testdb.New(t)
//		// db.Pool, db.URL …
//	}
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"

	"github.com/outboxkit/offsetstore/internal/localpg"
	"github.com/outboxkit/offsetstore/migrations"
)

const (
	// EnvDatabaseURL names an existing server to test against.
	EnvDatabaseURL = "OFFSETSTORE_TEST_DATABASE_URL"
	// EnvImage names the container image to start.
	EnvImage = "OFFSETSTORE_TEST_IMAGE"
	// EnvBackend chooses the backend when EnvDatabaseURL is unset: auto
	// (or empty), container or local.
	EnvBackend = "OFFSETSTORE_TEST_BACKEND"
	// DefaultImage is the official image used when EnvImage is unset.
	DefaultImage = "postgres:17-alpine"

	templateName = "offsetstore_template"
)

// Backend is where the server of the tests runs.
type Backend string

// The backends.
const (
	BackendURL       Backend = "url"       // the server of EnvDatabaseURL
	BackendContainer Backend = "container" // a container of EnvImage
	BackendLocal     Backend = "local"     // PostgreSQL's binaries on this machine (package localpg)
)

// Server is the PostgreSQL server of this test binary.
type Server struct {
	// AdminURL connects to the maintenance database as a superuser (or the
	// role of EnvDatabaseURL).
	AdminURL string
	// Backend is where the server runs.
	Backend Backend
	// Image is the container image, empty for the other backends.
	Image string
	// Local is the server of BackendLocal, nil for the others.
	Local *localpg.Server

	ctr   *tcpostgres.PostgresContainer
	admin *pgxpool.Pool
	mu    sync.Mutex // serialises Restart
	why   string     // why auto chose the local backend
}

// String describes the backend: "container localhost/postgres:17",
// "local binaries: PostgreSQL 15.18 (…) on 127.0.0.1:…", or "the server
// of $OFFSETSTORE_TEST_DATABASE_URL".
func (s *Server) String() string {
	switch s.Backend {
	case BackendContainer:
		return "container " + s.Image
	case BackendLocal:
		d := "local binaries: " + s.Local.String()
		if s.why != "" {
			d += " (" + s.why + ")"
		}
		return d
	}
	return "the server of $" + EnvDatabaseURL + " (" + redact(s.AdminURL) + ")"
}

var (
	serverOnce sync.Once
	server     *Server
	serverErr  error
)

// Main runs the tests of a package and then stops the container, if one
// was started. Use it as the package's TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if server != nil {
		server.close()
	}
	closeCitus()
	if testing.Verbose() && createTime.n > 0 {
		fmt.Printf("testdb: %d databases created from the template, mean %v, max %v\n",
			createTime.n, (createTime.total / time.Duration(createTime.n)).Round(time.Millisecond), createTime.max.Round(time.Millisecond))
	}
	os.Exit(code)
}

// Shared returns the server of this test binary, starting it on first use.
// It fails the test when no server can be had, and skips it under -short.
func Shared(t testing.TB) *Server {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs PostgreSQL; skipped with -short")
	}
	serverOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		server, serverErr = start(ctx)
	})
	if serverErr != nil {
		t.Fatalf("testdb: no PostgreSQL for integration tests: %v\n"+
			"Make a Docker engine available (the image is $%s, default %s), "+
			"or %s ($%s=local uses them even where Docker answers), "+
			"or set $%s to a server whose role may CREATE DATABASE; "+
			"run go test -short for unit tests only.",
			serverErr, EnvImage, DefaultImage, localpg.InstallHint, EnvBackend, EnvDatabaseURL)
	}
	return server
}

func start(ctx context.Context) (*Server, error) {
	s := &Server{}
	if u := os.Getenv(EnvDatabaseURL); u != "" {
		s.Backend, s.AdminURL = BackendURL, u
	} else {
		b, why, err := chooseBackend(ctx)
		if err != nil {
			return nil, err
		}
		s.Backend, s.why = b, why
		if b == BackendContainer {
			err = s.startContainer(ctx)
		} else {
			err = s.startLocal(ctx)
		}
		if err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(os.Stderr, "testdb: backend: %s\n", s)
	admin, err := pgxpool.New(ctx, s.AdminURL)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("connect to %s: %w", redact(s.AdminURL), err)
	}
	s.admin = admin
	if err := s.prepareTemplate(ctx); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *Server) startContainer(ctx context.Context) error {
	s.Image = os.Getenv(EnvImage)
	if s.Image == "" {
		s.Image = DefaultImage
	}
	// A fixed host port, so that the address stays the same across
	// Restart (Docker assigns a new ephemeral port on every start).
	port, err := freePort()
	if err != nil {
		return err
	}
	ctr, err := tcpostgres.Run(ctx, s.Image,
		tcpostgres.WithDatabase("offsetstore"),
		tcpostgres.WithUsername("offsetstore"),
		tcpostgres.WithPassword("offsetstore"),
		tcpostgres.BasicWaitStrategies(),
		// Durability is what the reliability tests check, so fsync stays on;
		// more connections for parallel tests.
		testcontainers.WithCmd("postgres", "-c", "max_connections=300"),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.PortBindings = network.PortMap{
				network.MustParsePort("5432/tcp"): {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: strconv.Itoa(port)}},
			}
		}),
	)
	if ctr != nil {
		s.ctr = ctr
	}
	if err != nil {
		s.close()
		return fmt.Errorf("start container %s: %w", s.Image, err)
	}
	s.AdminURL, err = ctr.ConnectionString(ctx, "sslmode=disable")
	if err != nil {
		s.close()
		return fmt.Errorf("container connection string: %w", err)
	}
	return nil
}

// startLocal starts a throwaway server from the local binaries, with as
// many connections as the container allows.
func (s *Server) startLocal(ctx context.Context) error {
	l, err := localpg.Start(ctx, localpg.WithSetting("max_connections", "300"))
	if err != nil {
		return fmt.Errorf("start PostgreSQL from local binaries: %w", err)
	}
	s.Local, s.AdminURL = l, l.URL
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) prepareTemplate(ctx context.Context) error {
	tmpl := pgx.Identifier{templateName}.Sanitize()
	if _, err := s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+tmpl+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop old template: %w", err)
	}
	if _, err := s.admin.Exec(ctx, "CREATE DATABASE "+tmpl); err != nil {
		return fmt.Errorf("create template database: %w", err)
	}
	if err := migrations.Up(ctx, s.databaseURL(templateName)); err != nil {
		return fmt.Errorf("migrate template: %w", err)
	}
	return nil
}

// databaseURL is AdminURL pointed at another database.
func (s *Server) databaseURL(name string) string {
	u, err := url.Parse(s.AdminURL)
	if err != nil || u.Scheme == "" {
		// A keyword/value string: a later dbname wins.
		return s.AdminURL + " dbname=" + name
	}
	u.Path = "/" + name
	return u.String()
}

func (s *Server) close() {
	if s.admin != nil {
		s.admin.Close()
	}
	if s.ctr != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = testcontainers.TerminateContainer(s.ctr, testcontainers.StopContext(ctx))
	}
	if s.Local != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.Local.Stop(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "testdb: stop the local server: %v\n", err)
		}
	}
}

// DB is one test's own database, created from the migrated template and
// dropped when the test ends.
type DB struct {
	// Name is the database name.
	Name string
	// URL connects to it (postgres:// form when the server's URL is one).
	URL string
	// Pool is a pool on it, closed when the test ends.
	Pool *pgxpool.Pool
	// Server is the shared server.
	Server *Server
}

// New creates a fresh migrated database for t and a pool on it. Both go
// away when t ends.
func New(t testing.TB) *DB {
	t.Helper()
	return create(t, templateName)
}

// NewEmpty is New without the migrations: an empty database, for tests of
// the migrations themselves.
func NewEmpty(t testing.TB) *DB {
	t.Helper()
	return create(t, "template0")
}

func create(t testing.TB, template string) *DB {
	t.Helper()
	s := Shared(t)
	name := "offsetstore_test_" + randomSuffix()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	if _, err := s.admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE "+pgx.Identifier{template}.Sanitize()); err != nil {
		t.Fatalf("testdb: create database %s: %v", name, err)
	}
	createTime.add(time.Since(start))
	db := &DB{Name: name, URL: s.databaseURL(name), Server: s}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("testdb: drop database %s: %v", name, err)
		}
	})
	db.Pool = db.NewPool(t, nil)
	return db
}

type durations struct {
	mu    sync.Mutex
	n     int
	total time.Duration
	max   time.Duration
}

func (d *durations) add(x time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.n++
	d.total += x
	d.max = max(d.max, x)
}

// createTime measures CREATE DATABASE … TEMPLATE; Main reports it with -v.
var createTime durations

// NewPool opens another pool on the test database, closed when t ends.
// configure, if not nil, may change the config first (pool size, tracer …).
func (d *DB) NewPool(t testing.TB, configure func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	return openPool(t, d.URL, d.Name, configure)
}

// DefaultIsolation is a configure function for NewPool: every transaction
// of the pool, implicit ones included, runs at level ("repeatable read",
// "serializable", …) unless it says otherwise.
func DefaultIsolation(level string) func(*pgxpool.Config) {
	return func(cfg *pgxpool.Config) {
		cfg.ConnConfig.RuntimeParams["default_transaction_isolation"] = level
	}
}

// openPool opens a pool on url, checked with a ping and closed when t
// ends; what names the database in messages. configure, if not nil, may
// change the config first.
func openPool(t testing.TB, url, what string, configure func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatalf("testdb: parse URL: %v", err)
	}
	if configure != nil {
		configure(cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("testdb: open pool: %v", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		t.Fatalf("testdb: ping %s: %v", what, err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// TerminateBackends ends every other session connected to the test
// database (pg_terminate_backend), as a crashed connection would look to
// its client. It returns how many were terminated.
func (d *DB) TerminateBackends(ctx context.Context) (int, error) {
	var n int
	err := d.Server.admin.QueryRow(ctx,
		`SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
		   FROM pg_stat_activity
		  WHERE datname = $1 AND pid <> pg_backend_pid()`, d.Name).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("testdb: terminate backends of %s: %w", d.Name, err)
	}
	return n, nil
}

// ErrNoContainer is returned by the server controls that need the
// container (or the local server) when the tests run against an external
// server.
var ErrNoContainer = errors.New("testdb: no container: the tests run against " + EnvDatabaseURL)

// CanRestart reports whether Restart works on this server: on a container
// and on the local binaries, not on the server of EnvDatabaseURL.
func (s *Server) CanRestart() bool { return s.ctr != nil || s.Local != nil }

// Restart stops the server and starts it again. With kill, the container
// gets SIGKILL, the local server an immediate shutdown (SIGQUIT, as
// pg_ctl stop -m immediate): a crash, no shutdown checkpoint, recovery on
// start; otherwise a clean stop. The address stays the same, so pools
// reconnect by themselves once it is back. Other tests on the shared
// server see the outage too: tests that restart must not run in parallel
// with others.
func (s *Server) Restart(ctx context.Context, kill bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Local != nil {
		if err := s.Local.Restart(ctx, kill); err != nil {
			return fmt.Errorf("testdb: restart the local server: %w", err)
		}
		return s.waitReady(ctx)
	}
	if s.ctr == nil {
		return ErrNoContainer
	}
	if kill {
		cli, err := testcontainers.NewDockerClientWithOpts(ctx)
		if err != nil {
			return fmt.Errorf("testdb: docker client: %w", err)
		}
		defer cli.Close()
		if _, err := cli.ContainerKill(ctx, s.ctr.GetContainerID(), client.ContainerKillOptions{Signal: "KILL"}); err != nil {
			return fmt.Errorf("testdb: kill container: %w", err)
		}
	} else {
		timeout := 30 * time.Second
		if err := s.ctr.Stop(ctx, &timeout); err != nil {
			return fmt.Errorf("testdb: stop container: %w", err)
		}
	}
	if err := s.ctr.Start(ctx); err != nil {
		return fmt.Errorf("testdb: start container: %w", err)
	}
	return s.waitReady(ctx)
}

func (s *Server) waitReady(ctx context.Context) error {
	for {
		err := s.admin.Ping(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testdb: server not ready after restart: %w (last: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func redact(u string) string {
	pu, err := url.Parse(u)
	if err != nil || pu.User == nil {
		return "the server"
	}
	return pu.Redacted()
}
