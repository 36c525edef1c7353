// Package console is what the offsetstore programs (the operator CLI and
// the demo) share about their process: signals, terminals, and the
// connection to PostgreSQL.
package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/term"

	"github.com/outboxkit/offsetstore/migrations"
)

// Main runs run with a context that Ctrl-C or SIGTERM cancels, and exits
// with the status it returns. A second Ctrl-C ends the process at once.
func Main(run func(ctx context.Context) int) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := run(ctx)
	stop()
	os.Exit(code)
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// ErrInvalidConnString is matched by the error of Connect for a connection
// string that cannot be parsed.
var ErrInvalidConnString = errors.New("invalid connection string")

// connectTimeout bounds each connection attempt unless the connection
// string sets connect_timeout.
const connectTimeout = 10 * time.Second

// ParseConnString parses a postgres:// or postgresql:// URL, the migrate
// CLI's pgx5:// or pgx:// URL (read as postgres://, with its own x-…
// parameters, which the server would reject as unknown settings, dropped
// by golang-migrate's FilterCustomQuery), or a keyword/value string.
func ParseConnString(s string) (*pgxpool.Config, error) {
	norm := s // empty: the PG* environment variables alone
	if strings.TrimSpace(s) != "" {
		var err error
		if norm, err = migrations.ConnString(s); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidConnString, err)
		}
	}
	cfg, err := pgxpool.ParseConfig(norm)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConnString, err)
	}
	return cfg, nil
}

// Connect opens a small pool (4 connections) on connString, named
// application in pg_stat_activity unless the string names one, and checks
// that the server answers. configure, if given, may change the config
// last (tests add a tracer).
func Connect(ctx context.Context, connString, application string, configure ...func(*pgxpool.Config)) (*pgxpool.Pool, error) {
	cfg, err := ParseConnString(connString)
	if err != nil {
		return nil, err
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = application
	}
	cfg.MaxConns = 4
	for _, c := range configure {
		if c != nil {
			c(cfg)
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to %s: %w", describe(cfg), err)
	}
	return pool, nil
}

func describe(cfg *pgxpool.Config) string {
	c := cfg.ConnConfig
	if strings.HasPrefix(c.Host, "/") {
		return fmt.Sprintf("database %q on socket %s", c.Database, c.Host)
	}
	return fmt.Sprintf("database %q on %s:%d", c.Database, c.Host, c.Port)
}
