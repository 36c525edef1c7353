package migrations

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/golang-migrate/migrate/v4"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// FS holds the SQL migrations, named NNNNNN_name.up.sql / .down.sql as the
// migrate CLI expects.
//
//go:embed *.sql
var FS embed.FS

// MigrationsTable is the table in which golang-migrate records the applied
// version. It is not the default schema_migrations, so that a service that
// already uses golang-migrate for its own schema does not collide. Pass
// x-migrations-table=offsetstore_schema_migrations to the migrate CLI.
const MigrationsTable = "offsetstore_schema_migrations"

// Up applies every migration not yet applied. Being up to date already is
// success. databaseURL is a postgres://, postgresql:// or pgx5:// URL, or a
// keyword/value connection string; x-… query parameters meant for the
// migrate CLI are ignored. ctx bounds the connection attempt and stops
// between migrations once done.
func Up(ctx context.Context, databaseURL string) error {
	return run(ctx, "up", databaseURL, func(m *migrate.Migrate) error { return m.Up() })
}

// Down rolls every migration back, dropping the journal table and all its
// rows. Nothing applied is success.
func Down(ctx context.Context, databaseURL string) error {
	return run(ctx, "down", databaseURL, func(m *migrate.Migrate) error { return m.Down() })
}

// Version returns the applied migration version, and whether a failed
// migration left it dirty. It is 0, false when nothing is applied.
func Version(ctx context.Context, databaseURL string) (version uint, dirty bool, err error) {
	err = run(ctx, "version", databaseURL, func(m *migrate.Migrate) error {
		var verr error
		version, dirty, verr = m.Version()
		if errors.Is(verr, migrate.ErrNilVersion) {
			return nil
		}
		return verr
	})
	return version, dirty, err
}

func run(ctx context.Context, op, databaseURL string, fn func(*migrate.Migrate) error) error {
	cfg, err := parseURL(databaseURL)
	if err != nil {
		return fmt.Errorf("migrations: %s: invalid database URL: %w", op, err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return fmt.Errorf("migrations: %s: cannot connect to %s: %w", op, describe(cfg), err)
	}

	m, err := newMigrate(db)
	if err != nil {
		return fmt.Errorf("migrations: %s: %w", op, err)
	}
	defer m.Close()

	// Stop between migrations once ctx is done; golang-migrate has no
	// context of its own.
	stop := context.AfterFunc(ctx, func() { m.GracefulStop <- true })
	err = fn(m)
	stopped := !stop() // the graceful stop was requested
	if err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrations: %s on %s: %w", op, describe(cfg), err)
	}
	if stopped {
		if v, _, verr := m.Version(); verr == nil && op == "up" && v == lastVersion() {
			return nil // everything was applied before the stop took effect
		}
		return fmt.Errorf("migrations: %s on %s: stopped: %w", op, describe(cfg), context.Cause(ctx))
	}
	return nil
}

// lastVersion is the highest migration version in FS.
func lastVersion() uint {
	var last uint
	entries, _ := FS.ReadDir(".")
	for _, e := range entries {
		var v uint
		if _, err := fmt.Sscanf(e.Name(), "%d_", &v); err == nil && v > last {
			last = v
		}
	}
	return last
}

func newMigrate(db *sql.DB) (*migrate.Migrate, error) {
	src, err := iofs.New(FS, ".")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	drv, err := migratepgx.WithInstance(db, &migratepgx.Config{MigrationsTable: MigrationsTable})
	if err != nil {
		_ = src.Close()
		return nil, fmt.Errorf("open migrate driver: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", drv)
	if err != nil {
		_ = src.Close()
		return nil, fmt.Errorf("init migrate: %w", err)
	}
	return m, nil
}

// parseURL accepts what the migrate CLI accepts for Postgres, plus
// keyword/value strings, and drops the CLI's own x-… parameters, which
// the server would reject as unknown settings.
func parseURL(databaseURL string) (*pgx.ConnConfig, error) {
	s, err := ConnString(databaseURL)
	if err != nil {
		return nil, err
	}
	return pgx.ParseConfig(s)
}

// ConnString turns a database URL as Up takes it into one pgx and the
// server accept: postgres:// and postgresql:// URLs and keyword/value
// strings as they are, the migrate CLI's pgx5:// and pgx:// read as
// postgres://, and the migrate CLI's own x-… parameters (such as
// x-migrations-table) dropped with golang-migrate's FilterCustomQuery, as
// the server would reject them as unknown settings. Another scheme is an
// error.
func ConnString(databaseURL string) (string, error) {
	if strings.TrimSpace(databaseURL) == "" {
		return "", errors.New("empty")
	}
	scheme, rest, ok := strings.Cut(databaseURL, "://")
	if !ok {
		return databaseURL, nil // keyword/value
	}
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql", "pgx", "pgx5":
	default:
		return "", fmt.Errorf("unsupported scheme %q (want postgres://, postgresql:// or pgx5://)", scheme)
	}
	u, err := url.Parse("postgres://" + rest)
	if err != nil {
		return "", err
	}
	return migrate.FilterCustomQuery(u).String(), nil
}

func describe(cfg *pgx.ConnConfig) string {
	return fmt.Sprintf("%s:%d/%s", cfg.Host, cfg.Port, cfg.Database)
}
