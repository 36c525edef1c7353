package pgjournal_test

import (
	"slices"
	"testing"
	"time"

	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
)

// Listing the offset store's streams among 100 000 source streams: on a
// table whose persistence_id is COLLATE "C" a range of the index (a few
// rows read), on the database's default collation whatever that collation
// allows, with the same answer on both, and the one a filter of every id
// gives.
func TestPrefixListing100kStreams(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := t.Context()
	for _, q := range []string{
		`CREATE SCHEMA c`,
		`CREATE TABLE c.journal (LIKE journal INCLUDING ALL)`,
		`ALTER TABLE c.journal ALTER COLUMN persistence_id TYPE text COLLATE "C"`,
	} {
		if _, err := db.Pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	outboxes := []string{"outbox::orders::offsets", "outbox::billing::offsets", "outbox::zz::offsets"}
	for _, schema := range []string{"public", "c"} {
		table := schema + ".journal"
		fillStreams(t, ctx, db.Pool, table, 100_000, 1, 10)
		j := pgjournal.New(db.Pool, pgjournal.WithTable(schema, "journal"))
		var events []journal.Event
		for _, pid := range append(slices.Clone(outboxes), "outboxa", "outbox:;b", "Outbox::c::offsets") {
			events = append(events, journal.Event{PersistenceID: pid, SequenceNr: 1, Payload: []byte{0}})
		}
		if err := j.Append(ctx, events...); err != nil {
			t.Fatal(err)
		}
		bytewise, err := pgjournal.Bytewise(ctx, j)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		got, err := j.PersistenceIDs(ctx, journal.ListOptions{Prefix: "outbox::", Limit: journal.MaxListLimit})
		took := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(outboxes))) {
			t.Fatalf("%s: listed %q, want %q", table, got, outboxes)
		}
		start = time.Now()
		if _, err := j.PersistenceIDs(ctx, journal.ListOptions{Prefix: "outbox::", Limit: journal.MaxListLimit}); err != nil {
			t.Fatal(err)
		}
		again := time.Since(start)
		nodes, scanned := planOf(t, db.Pool, recordedQuery{
			sql:  pgjournal.ListPrefixSQL(table, bytewise, false),
			args: []any{"", "outbox::", int64(journal.MaxListLimit)},
		})
		t.Logf("%s: byte order %v, %d outboxes listed in %v (again: %v), plan %v reads %v index entries", table, bytewise, len(got), took, again, nodes, scanned)
		if schema == "c" {
			if !bytewise {
				t.Fatal("a COLLATE \"C\" column was not recognised as byte order")
			}
			if scanned > float64(len(outboxes)+2) {
				t.Fatalf("on COLLATE \"C\" the listing read %v entries, want the %d outboxes and one more", scanned, len(outboxes))
			}
		}
		if slices.Contains(nodes, "Seq Scan") {
			t.Fatalf("plan %v: want index probes, no Seq Scan", nodes)
		}
	}
}

func TestBytewiseCollation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		coll, db string
		want     bool
	}{
		{`{"collname":"C","collprovider":"c","collcollate":"C"}`, `{}`, true},
		{`{"collname":"POSIX","collprovider":"c","collcollate":"POSIX"}`, `{}`, true},
		{`{"collname":"ucs_basic","collprovider":"b"}`, `{}`, true},
		{`{"collname":"en-x-icu","collprovider":"i"}`, `{}`, false},
		{`{"collname":"en_US","collprovider":"c","collcollate":"en_US.utf8"}`, `{}`, false},
		{`{"collname":"mine","collprovider":"c","collcollate":"C"}`, `{}`, true},
		{`{"collname":"C.utf8","collprovider":"c","collcollate":"C.UTF-8"}`, `{}`, false},
		{`{"collname":"default","collprovider":"d"}`, `{"datcollate":"C"}`, true},
		{`{"collname":"default","collprovider":"d"}`, `{"datcollate":"en_US.UTF-8"}`, false},
		{`{"collname":"default","collprovider":"d"}`, `{"datcollate":"C","datlocprovider":"c"}`, true},
		{`{"collname":"default","collprovider":"d"}`, `{"datcollate":"C","datlocprovider":"i"}`, false},
		{`{"collname":"default","collprovider":"d"}`, `{"datcollate":"C.UTF-8","datlocprovider":"b","datlocale":"C.UTF-8"}`, true},
	} {
		got, err := pgjournal.BytewiseCollation([]byte(tc.coll), []byte(tc.db))
		if err != nil || got != tc.want {
			t.Fatalf("bytewiseCollation(%s, %s) = %v, %v; want %v", tc.coll, tc.db, got, err, tc.want)
		}
	}
}
