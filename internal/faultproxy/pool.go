package faultproxy

import (
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outboxkit/offsetstore/internal/testdb"
)

// Pool starts a proxy in front of db's server and returns a pool on db
// whose connections pass through it. configure, if not nil, may change
// the pool's config first. The proxy and the pool are closed when t ends.
func Pool(t testing.TB, db *testdb.DB, configure func(*pgxpool.Config)) (*pgxpool.Pool, *Proxy) {
	t.Helper()
	u, err := url.Parse(db.URL)
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
