package main

import (
	"maps"
	"strings"
	"testing"

	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// Every command reads an outbox written in incremental mode through the
// library: show and export the offsets of the full snapshot and its
// deltas, history the kind of each row, lag the current offsets, and the
// writes start from them.
func TestIncrementalOutbox(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := testdb.New(t)
	f := &fixture{db: db}
	s, err := store.Open(ctx, pgjournal.New(db.Pool), "inc", store.WithIncremental(), store.WithCompactionRatio(1e9))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []map[string]uint64{{"a": 1, "b": 1, "c": 1}, {"a": 5}, {"b": 7}} {
		if err := s.Save(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Forget(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"a": 5, "b": 7}

	var doc snapshotDoc
	if err := decodeJSON(mustRun(t, f.args("export", "inc")...), &doc); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(doc.Offsets, want) || doc.Seq != 4 {
		t.Fatalf("export = %+v, want seq 4 and %v", doc, want)
	}
	show := mustRun(t, f.args("show", "inc")...)
	for _, line := range []string{"seq             4", "keys            2", "mode            incremental"} {
		if !strings.Contains(show, line) {
			t.Fatalf("show does not say %q:\n%s", line, show)
		}
	}
	var hist struct {
		Snapshots []historyRow `json:"snapshots"`
	}
	if err := decodeJSON(mustRun(t, f.args("history", "inc", "--json")...), &hist); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, r := range hist.Snapshots {
		kinds = append(kinds, r.Kind)
	}
	if got := strings.Join(kinds, " "); got != "full delta delta delta" {
		t.Fatalf("history kinds = %s", got)
	}
	if last := hist.Snapshots[len(hist.Snapshots)-1]; last.Removed != 1 || *last.Keys != 0 {
		t.Fatalf("the Forget's row = %+v, want 0 keys set and 1 removed", last)
	}
	if lag := mustRun(t, f.args("lag", "inc")...); !strings.Contains(lag, "keys       2") {
		t.Fatalf("lag does not count the current keys:\n%s", lag)
	}

	mustRun(t, f.args("rewind", "inc", "a=2", "--apply")...)
	got, seq := f.offsets(t, "inc")
	if !maps.Equal(got, map[string]uint64{"a": 2, "b": 7}) || seq != 5 {
		t.Fatalf("after the rewind: %v at %d", got, seq)
	}
}
