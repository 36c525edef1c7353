package faultproxy

import (
	neturl "net/url"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Database is what Pool needs of a test database: testdb's *DB and
// *CitusDB (its coordinator) both are one.
type Database interface {
	// NewPool opens a pool on the database, closed when t ends.
	NewPool(t testing.TB, configure func(*pgxpool.Config)) *pgxpool.Pool
}

// Pool starts a proxy in front of the server of db, reached at url, and
// returns a pool on db whose connections pass through it. configure, if
// not nil, may change the pool's config first. The proxy and the pool are
// closed when t ends.
func Pool(t testing.TB, db Database, url string, configure func(*pgxpool.Config)) (*pgxpool.Pool, *Proxy) {
	t.Helper()
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatalf("faultproxy: parse database URL: %v", err)
	}
	p, err := Start(u.Host)
	if err != nil {
		t.Fatalf("faultproxy: start: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	pool := db.NewPool(t, func(c *pgxpool.Config) {
		c.ConnConfig.Host = "127.0.0.1"
		c.ConnConfig.Port = p.Port()
		if configure != nil {
			configure(c)
		}
	})
	return pool, p
}
