// Package failover holds the failover tests of offsetstore: a primary with
// a standby (testdb.Replicated), the primary killed with SIGKILL and the
// standby promoted while relays save through a multi-host URL, and every
// acknowledged save checked on the promoted server. It is a package of its
// own so that its test binary runs its pairs apart from the other tests.
//
// The tests:
//
//   - TestFailover: writers save continuously (full and incremental
//     modes, Save and SaveTx with a sink row) through failovers to a
//     synchronous standby: no acknowledged save lost, nothing backwards,
//     the sink without duplicates or gaps, every chain opens.
//   - TestAsynchronousStandbyLosesAcknowledged: the same check with an
//     asynchronous standby that was stopped must find loss (the control
//     that shows the check can fail).
//   - TestCancelledSyncWait: a commit whose wait for the synchronous
//     standby is cancelled (its session terminated, pg_cancel_backend, a
//     client's cancel request) is never acknowledged, adopted or not; the
//     same writes without the confirmation are, and are lost.
//   - TestOpenedSnapshotLost: a store opened on a row that a failover
//     then loses refuses its first write (store.ErrOpenedSnapshotLost)
//     instead of building on it.
//   - TestRelayAcrossFailover: the reference relay (leader, committer,
//     store) goes on against the promoted server.
//   - TestDemotedPrimary: connections to a primary made read-only are
//     dropped and the store goes on on the promoted one.
//
// # Environment
//
//	OFFSETSTORE_FAILOVER_CYCLES  failovers of TestFailover (default 20)
package failover
