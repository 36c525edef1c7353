package pgjournal_test

import (
	"testing"

	"github.com/outboxkit/offsetstore/internal/testdb"
	"github.com/outboxkit/offsetstore/journal"
	"github.com/outboxkit/offsetstore/journal/journaltest"
	"github.com/outboxkit/offsetstore/journal/pgjournal"
)

// citusJournal is a journal on a fresh table of the Citus cluster,
// distributed by persistence_id.
func citusJournal(t *testing.T, configure func(*pgjournal.Journal), opts ...pgjournal.Option) journal.Journal {
	db := testdb.NewCitus(t)
	j := pgjournal.New(db.NewPool(t, smallPool), append([]pgjournal.Option{pgjournal.WithTable(db.Table())}, opts...)...)
	if configure != nil {
		configure(j)
	}
	return j
}

// TestConformanceOnCitus runs the conformance suite on a distributed
// journal: every statement names one persistence_id and routes to one
// shard on a worker.
func TestConformanceOnCitus(t *testing.T) {
	t.Parallel()
	journaltest.Run(t, func(t *testing.T) journal.Journal { return citusJournal(t, nil, pgjournal.WithCitus()) })
}

// Without WithCitus the journal is slower on a cluster but as correct.
func TestConformanceOnCitusPlainStatements(t *testing.T) {
	t.Parallel()
	journaltest.RunAppendNext(t, func(t *testing.T) journal.Journal { return citusJournal(t, nil) })
}

// WithCitus on a single PostgreSQL: the same contract.
func TestConformanceWithCitusOption(t *testing.T) {
	t.Parallel()
	journaltest.Run(t, func(t *testing.T) journal.Journal {
		return pgjournal.New(testdb.New(t).NewPool(t, smallPool), pgjournal.WithCitus())
	})
}

// Both of Append's statements, each forced on every batch, on the
// distributed journal: COPY into a distributed table is split by shard on
// the coordinator, INSERT … unnest is a multi-row insert it routes.
func TestAppendPathsOnCitus(t *testing.T) {
	t.Parallel()
	for _, p := range appendPaths {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			journaltest.RunBasics(t, func(t *testing.T) journal.Journal {
				return citusJournal(t, func(j *pgjournal.Journal) { p.force(j) })
			})
			journaltest.RunConflicts(t, func(t *testing.T) journal.Journal {
				return citusJournal(t, func(j *pgjournal.Journal) { p.force(j) })
			})
		})
	}
}
