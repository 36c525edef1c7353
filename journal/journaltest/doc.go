// Package journaltest is the conformance suite of the journal.Journal
// contract. Every backend runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		journaltest.Run(t, func(t *testing.T) journal.Journal {
//			return newJournalOnFreshDatabase(t)
//		})
//	}
//
// # Factory
//
// Run calls the factory once per subtest, from that subtest, and expects a
// fresh, empty journal each time: subtests run in parallel and never share
// rows. Register cleanup with t.Cleanup inside the factory.
//
// A pooled backend should be given a small pool (2 to 4 connections): the
// suite runs many operations after breaking out of Replay and after
// cancelling a context, so a leaked connection exhausts the pool and fails
// the test instead of going unnoticed. The pool needs at least 2
// connections, because one subtest calls the journal from inside a Replay
// loop.
//
// # Pieces
//
// Run is the entry point. The groups it runs (RunBasics, RunConflicts,
// RunValidation, RunReplay, RunDeleteTo, RunIsolation, RunContext,
// RunConcurrency, and for the optional interfaces a journal implements
// RunAppendNext, RunHead, RunStreamLister, RunHighestReader and
// RunBeforeReader) are
// exported for a backend that wants to run one of them on its own, e.g.
// under a fault, and Collect drains a Replay iterator.
package journaltest
