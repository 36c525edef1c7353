package localpg

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// The role and database Start makes, as the test container has them.
const (
	DefaultUser     = "offsetstore"
	DefaultDatabase = "offsetstore"
)

// Option configures Start.
type Option func(*config)

type config struct {
	database string
	settings []string
	baseDir  string
	bins     *Binaries
}

// WithDatabase names the database Start creates and URL connects to.
// Defaults to DefaultDatabase.
func WithDatabase(name string) Option { return func(c *config) { c.database = name } }

// WithSetting sets a server parameter (postgres -c name=value), e.g.
// max_connections. Defaults to the server's own defaults, apart from
// listen_addresses (127.0.0.1) and unix_socket_directories (none).
func WithSetting(name, value string) Option {
	return func(c *config) { c.settings = append(c.settings, name+"="+value) }
}

// WithBaseDir makes the server's temporary directory in dir. Defaults to
// os.TempDir(), or /tmp when the server runs as another user (see Start)
// who cannot reach os.TempDir().
func WithBaseDir(dir string) Option { return func(c *config) { c.baseDir = dir } }

// WithBinaries uses b instead of Find's choice.
func WithBinaries(b Binaries) Option { return func(c *config) { c.bins = &b } }

// Server is a throwaway PostgreSQL started from local binaries: its data
// directory in a temporary directory, listening on a free port of
// 127.0.0.1 only (no Unix socket), with a superuser DefaultUser whose
// password is random. Stop stops it and removes the directory.
//
// The server process is a child of this process in a process group of its
// own, so a Ctrl-C at a terminal reaches this process alone (which stops
// the server through Stop); on Linux it also gets SIGQUIT (an immediate
// shutdown) if this process dies without stopping it.
type Server struct {
	// URL connects to the database as the superuser.
	URL string
	// Port is the port on 127.0.0.1.
	Port int
	// Binaries are the programs the server runs.
	Binaries Binaries
	// Dir is the temporary directory: the data directory (data), the
	// server's log (postgres.log).
	Dir string
	// RunAs is the system user the server runs as when this process is
	// root (initdb and postgres refuse root), "" otherwise.
	RunAs string

	settings []string
	cred     *credential
	log      *os.File

	mu      sync.Mutex // serialises Stop and Restart
	proc    *process
	stopped bool
}

// process is one run of postgres; err is set before done closes.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start makes a data directory with initdb, starts postgres on a free
// port and creates the database. Run as root, it runs both as the system
// user postgres if there is one, else nobody, and makes the temporary
// directory theirs. On error, or when ctx ends first, nothing is left
// running or on disk.
func Start(ctx context.Context, opts ...Option) (_ *Server, err error) {
	cfg := config{database: DefaultDatabase}
	for _, o := range opts {
		o(&cfg)
	}
	if err := supported(); err != nil {
		return nil, err
	}
	s := &Server{settings: cfg.settings}
	if cfg.bins != nil {
		s.Binaries = *cfg.bins
	} else if s.Binaries, err = Find(ctx); err != nil {
		return nil, err
	}
	if s.cred, s.RunAs, err = unprivileged(); err != nil {
		return nil, err
	}
	if s.Dir, err = makeDir(cfg.baseDir, s.cred); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.shutdown(context.Background(), syscall.SIGQUIT)
			s.closeLog()
			_ = os.RemoveAll(s.Dir)
		}
	}()
	password, err := s.initdb(ctx)
	if err != nil {
		return nil, err
	}
	if err = s.openLogAndLaunch(ctx); err != nil {
		return nil, err
	}
	admin := s.url(password, "postgres")
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return nil, fmt.Errorf("localpg: connect: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{cfg.database}.Sanitize()); err != nil {
		return nil, fmt.Errorf("localpg: create database %s: %w", cfg.database, err)
	}
	s.URL = s.url(password, cfg.database)
	return s, nil
}

func (s *Server) url(password, database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(DefaultUser, password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// String describes the server for a person: "PostgreSQL 15.18
// (/usr/lib/postgresql/15/bin) on 127.0.0.1:41234, data in /tmp/…, as
// user postgres".
func (s *Server) String() string {
	d := fmt.Sprintf("%s on 127.0.0.1:%d, data in %s", s.Binaries, s.Port, s.Dir)
	if s.RunAs != "" {
		d += ", as user " + s.RunAs
	}
	return d
}

// initdb makes the data directory and returns the superuser's password.
func (s *Server) initdb(ctx context.Context) (string, error) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	password := hex.EncodeToString(b[:])
	pwfile := filepath.Join(s.Dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o600); err != nil {
		return "", err
	}
	if err := s.cred.chown(pwfile); err != nil {
		return "", err
	}
	defer os.Remove(pwfile)
	cmd := exec.CommandContext(ctx, s.Binaries.Initdb(),
		"-D", filepath.Join(s.Dir, "data"),
		"-U", DefaultUser, "--pwfile="+pwfile, "--auth=scram-sha-256",
		"-E", "UTF8", "--no-locale",
		// A throwaway server: no fsync of the new files (the server's
		// own writes are fsynced as usual).
		"--no-sync")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	s.prepare(cmd)
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("localpg: %s: %w\n%s", s.Binaries.Initdb(), err, tail(out.String(), 20))
	}
	return password, nil
}

// prepare sets what initdb and postgres share: the directory, the
// environment without PG* variables (PGPORT, PGDATA … would change what
// they do), the user and the process group.
func (s *Server) prepare(cmd *exec.Cmd) {
	cmd.Dir = s.Dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.SysProcAttr = sysProcAttr(s.cred)
}

// launch starts postgres and waits until it accepts connections.
func (s *Server) launch(ctx context.Context) error {
	args := []string{"-D", filepath.Join(s.Dir, "data"), "-p", strconv.Itoa(s.Port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="}
	for _, kv := range s.settings {
		args = append(args, "-c", kv)
	}
	cmd := exec.Command(s.Binaries.Postgres(), args...)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	s.prepare(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("localpg: start %s: %w", s.Binaries.Postgres(), err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.proc = p
	return s.waitReady(ctx, p)
}

// startTimeout bounds the wait for a server to accept connections (crash
// recovery after an immediate stop included).
const startTimeout = time.Minute

// waitReady waits until postgres accepts a TCP connection and answers
// the startup, or it exits, or ctx ends.
func (s *Server) waitReady(ctx context.Context, p *process) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	// Any role: "password authentication failed" means it is ready, the
	// startup packet was read and answered.
	probe := s.url("-", "postgres") + "&connect_timeout=2"
	for {
		c, err := pgx.Connect(ctx, probe)
		if err == nil {
			_ = c.Close(ctx)
			return nil
		}
		if ready(err) {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("localpg: postgres exited (%v) before it accepted connections:\n%s", p.err, s.logTail())
		case <-ctx.Done():
			return fmt.Errorf("localpg: postgres does not accept connections on 127.0.0.1:%d: %w (last: %v)\n%s", s.Port, ctx.Err(), err, s.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ready reports whether a failed connection was refused by a server that
// runs (a wrong password) rather than not yet there.
func ready(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "password authentication failed") || strings.Contains(msg, "SQLSTATE 28P01")
}

// shutdown stops the running postgres, if any, with sig (SIGINT: a fast
// shutdown; SIGQUIT: an immediate one, as pg_ctl stop -m fast and -m
// immediate send) and waits for it, escalating to SIGQUIT and SIGKILL
// when it takes longer than a minute. s.mu is held.
func (s *Server) shutdown(ctx context.Context, sig syscall.Signal) error {
	p := s.proc
	if p == nil {
		return nil
	}
	select {
	case <-p.done:
		s.proc = nil
		return nil
	default:
	}
	for _, next := range []syscall.Signal{sig, syscall.SIGQUIT, syscall.SIGKILL} {
		if err := p.cmd.Process.Signal(next); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("localpg: signal postgres: %w", err)
		}
		t := time.NewTimer(time.Minute)
		select {
		case <-p.done:
			t.Stop()
			s.proc = nil
			return nil
		case <-ctx.Done():
			t.Stop()
			ctx = context.Background() // escalate now, but wait for the end
		case <-t.C:
		}
	}
	<-p.done
	s.proc = nil
	return nil
}

// Stop stops the server (a fast shutdown) and removes its directory. It
// is safe to call more than once.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	s.stopped = true
	err := s.shutdown(ctx, syscall.SIGINT)
	s.closeLog()
	return errors.Join(err, os.RemoveAll(s.Dir))
}

// ErrStopped is returned by Restart after Stop.
var ErrStopped = errors.New("localpg: server stopped")

// Restart stops the server and starts it again on the same port and data.
// With immediate, the stop is an immediate shutdown (SIGQUIT, pg_ctl stop
// -m immediate: no shutdown checkpoint, crash recovery at the start, as
// after a crash); otherwise a fast one. Sessions end either way.
func (s *Server) Restart(ctx context.Context, immediate bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return ErrStopped
	}
	sig := syscall.SIGINT
	if immediate {
		sig = syscall.SIGQUIT
	}
	if err := s.shutdown(ctx, sig); err != nil {
		return err
	}
	return s.launch(ctx)
}

func (s *Server) closeLog() {
	if s.log != nil {
		_ = s.log.Close()
		s.log = nil
	}
}

// logTail returns the last lines of the server's log.
func (s *Server) logTail() string {
	data, err := os.ReadFile(filepath.Join(s.Dir, "postgres.log"))
	if err != nil {
		return ""
	}
	return tail(string(data), 20)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("localpg: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// makeDir makes the temporary directory in base (default os.TempDir()),
// owned by cred's user when there is one: in /tmp instead when that user
// cannot reach the default.
func makeDir(base string, cred *credential) (string, error) {
	switch {
	case base == "":
		base = os.TempDir()
		if cred != nil && !traversable(base) {
			base = "/tmp"
		}
	case cred != nil && !traversable(base):
		return "", fmt.Errorf("localpg: the server runs as another user, who cannot reach %s (every directory on the way needs o+x)", base)
	}
	dir, err := os.MkdirTemp(base, "offsetstore-pg-*")
	if err != nil {
		return "", fmt.Errorf("localpg: make a temporary directory: %w", err)
	}
	if err := cred.chown(dir); err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// traversable reports whether every directory from / to dir may be
// searched by anyone (o+x), so that another user reaches dir.
func traversable(dir string) bool {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return true
		}
		dir = parent
	}
}

// openLogAndLaunch opens the server's log in its data directory and
// starts postgres on a free port. A free port can be taken by another
// process before postgres binds it: it tries a few.
func (s *Server) openLogAndLaunch(ctx context.Context) error {
	var err error
	if s.log, err = os.OpenFile(filepath.Join(s.Dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		if s.Port, err = freePort(); err != nil {
			return err
		}
		err = s.launch(ctx)
		if err == nil || attempt == 3 || !strings.Contains(s.logTail(), "could not bind") {
			return err
		}
	}
}
