package store_test

import (
	"errors"
	"testing"

	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
	"github.com/outboxkit/offsetstore/store"
)

// The snapshot Open loaded is gone and another writer's row took its
// number (a failover lost the row, whose commit's wait for the standby
// had been cancelled, and the writer in doubt wrote that number again on
// the promoted server): the first write after Open must not build on the
// lost snapshot as if it were the server's. It fails with
// ErrOpenedSnapshotLost, writing nothing; opened again, the store loads
// the other writer's row.
func TestOpenedSnapshotReplaced(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := testdb.New(t)
	j := pgjournal.New(db.Pool)
	for _, mode := range chainModes {
		outbox := "replaced-" + mode.name
		x := open(t, j, outbox, mode.opts...)
		save(t, x, map[string]uint64{"a": 1})
		save(t, x, map[string]uint64{"b": 1}) // 2: the row that will be lost
		s := open(t, j, outbox, mode.opts...)
		if _, err := db.Pool.Exec(ctx, `DELETE FROM journal WHERE persistence_id = $1 AND sequence_nr = 2`, s.PersistenceID()); err != nil {
			t.Fatal(err)
		}
		// The other writer's row at 2, on the promoted server.
		other := open(t, j, outbox, mode.opts...)
		if err := other.Save(ctx, map[string]uint64{"c": 7}); err != nil {
			t.Fatal(err)
		}
		if other.SequenceNr() != 2 {
			t.Fatalf("%s: the other writer wrote %d, want 2", mode.name, other.SequenceNr())
		}
		err := s.Save(ctx, map[string]uint64{"d": 1})
		if !errors.Is(err, store.ErrOpenedSnapshotLost) {
			t.Fatalf("%s: the first Save after Open, over a snapshot replaced since = %v; want ErrOpenedSnapshotLost", mode.name, err)
		}
		if h, err := journal.ReadHead(ctx, j, s.PersistenceID()); err != nil || h.Highest != 2 {
			t.Fatalf("%s: head %d (%v) after the refused Save, want 2: something was written", mode.name, h.Highest, err)
		}
		s = open(t, j, outbox, mode.opts...)
		save(t, s, map[string]uint64{"d": 1})
		wantOffsets(t, load(t, open(t, j, outbox, mode.opts...)), map[string]uint64{"a": 1, "c": 7, "d": 1})
	}
}
