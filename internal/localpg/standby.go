package localpg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// StartStandby starts a standby of primary: a copy of its data taken with
// pg_basebackup -R (so that it starts in recovery and streams the
// primary's WAL from then on), run by the binaries of primary, on a free
// port of 127.0.0.1, with primary's settings followed by those of opts
// (WithSetting; WithBinaries and WithDatabase are ignored: the standby is a
// copy). A hot standby accepts read-only connections as soon as Start
// returns. Its URL connects to primary's database, as primary's
// superuser. Stop stops it and removes its directory, as for a primary.
//
// The copy reaches primary over a replication connection of its
// superuser, which the pg_hba.conf initdb writes allows from 127.0.0.1.
// On error, or when ctx ends first, nothing is left running or on disk.
func StartStandby(ctx context.Context, primary *Server, opts ...Option) (_ *Server, err error) {
	if primary == nil {
		return nil, errors.New("localpg: standby of a nil primary")
	}
	cfg := config{}
	for _, o := range opts {
		o(&cfg)
	}
	pu, err := url.Parse(primary.URL)
	if err != nil || pu.User == nil {
		return nil, fmt.Errorf("localpg: the primary's URL names no user: %v", err)
	}
	password, _ := pu.User.Password()
	s := &Server{
		Binaries: primary.Binaries,
		settings: append(append([]string(nil), primary.settings...), cfg.settings...),
		cred:     primary.cred,
		RunAs:    primary.RunAs,
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
	if err := s.basebackup(ctx, primary.Port, password); err != nil {
		return nil, err
	}
	if err = s.openLogAndLaunch(ctx); err != nil {
		return nil, err
	}
	s.URL = s.url(password, strings.TrimPrefix(pu.Path, "/"))
	return s, nil
}

// basebackup copies the data of the server on port into s's data
// directory, as a standby of it (pg_basebackup -R -X stream, a fast
// checkpoint), as s's user.
func (s *Server) basebackup(ctx context.Context, port int, password string) error {
	prog := filepath.Join(s.Binaries.Dir, "pg_basebackup")
	if _, err := os.Stat(prog); err != nil {
		return fmt.Errorf("localpg: no pg_basebackup beside %s: %w", s.Binaries.Postgres(), err)
	}
	// Connection values quoted as libpq's keyword/value strings want them.
	quote := func(v string) string {
		return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
	}
	conninfo := "host=127.0.0.1 port=" + strconv.Itoa(port) + " user=" + quote(DefaultUser) + " password=" + quote(password)
	cmd := exec.CommandContext(ctx, prog, "-D", filepath.Join(s.Dir, "data"), "-d", conninfo,
		"-R", "-X", "stream", "-c", "fast", "--no-sync")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	s.prepare(cmd)
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("localpg: %s: %w\n%s", prog, err, tail(out.String(), 20))
	}
	return nil
}

// Kill ends the server at once with SIGKILL, the postmaster and every
// process it started: a crash, as a container's SIGKILL or a machine's
// loss is. The data stays; Resume starts the server again (crash
// recovery). Nothing happens when the server is not running.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil {
		return nil
	}
	if err := killAll(p.cmd.Process); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("localpg: kill postgres: %w", err)
	}
	<-p.done
	s.proc = nil
	return nil
}

// Halt stops the server (a fast shutdown) and keeps its data and port:
// Resume starts it again.
func (s *Server) Halt(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return ErrStopped
	}
	return s.shutdown(ctx, syscall.SIGINT)
}

// Resume starts a server that Halt or Kill stopped, on the same port and
// data, and waits until it accepts connections. It does nothing for a
// server that runs.
func (s *Server) Resume(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return ErrStopped
	}
	if s.proc != nil {
		select {
		case <-s.proc.done:
		default:
			return nil
		}
	}
	// After Kill, the postmaster is gone but its children may still be
	// dying, attached to its shared memory: postgres then refuses to
	// start ("pre-existing shared memory block … is still in use") until
	// they are gone.
	for attempt := 1; ; attempt++ {
		err := s.launch(ctx)
		if err == nil || attempt == 50 || !strings.Contains(err.Error(), "pre-existing shared memory block") {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}
