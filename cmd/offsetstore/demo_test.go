package main

import (
	"context"
	"strings"
	"testing"

	"github.com/outboxkit/offsetstore/internal/testdb"
)

// TestDemo runs the demo end to end, small, against the test database
// (--database-url: no second container).
func TestDemo(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	args := []string{"demo", "--database-url", db.URL, "--aggregates", "12", "--events", "9", "--batch", "25", "--save-every", "10", "--top", "3"}
	out := mustRun(t, args...)
	// 108 events; killed after 108/2 + 10/2 = 59, 9 after the save at 50.
	for _, want := range []string{
		"demo: 12 aggregates x 9 events = 108 events; the relay saves every 10 events and is killed after 59\n",
		"append: 108 events in 5 batches",
		"relay 1: published 59, saved 5 times (last at snapshot 5), killed 9 events after its last save",
		"relay 2: reopened at snapshot 5, published 58, saved 6 times",
		"fencing: the killed relay's late save was refused (store.ErrFenced)\n",
		"\nevents        108\npublished     117\nre-published  9 (",
		"\nlost          0 (",
		"first 3 of 12 keys",
		"keys            12\n",
		"-agg-01       9\n",
		"... and 9 more keys\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}

	// Runs again on the same database, in its own names.
	mustRun(t, args...)
	var outboxes int
	if err := db.Pool.QueryRow(context.Background(),
		`SELECT count(DISTINCT persistence_id) FROM journal WHERE persistence_id LIKE 'outbox::demo-%'`).Scan(&outboxes); err != nil || outboxes != 2 {
		t.Fatalf("%d demo outboxes (%v), want 2", outboxes, err)
	}
}
