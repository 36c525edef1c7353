package store_test

import (
	"testing"

	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
)

// citusJournal is a journal on a fresh table of the Citus cluster,
// distributed by persistence_id: the outbox's snapshots live in one shard
// on one worker.
func citusJournal(t *testing.T) journal.Journal {
	db := testdb.NewCitus(t)
	return pgjournal.New(db.Pool, pgjournal.WithTable(db.Table()), pgjournal.WithCitus())
}

func TestStoreOnCitus(t *testing.T) {
	t.Parallel()
	runSuite(t, citusJournal)
}
