// Package reliability holds the reliability tests of offsetstore against a
// real PostgreSQL: connection faults, split brain, load, hostile input and
// least privilege in this directory's tests, crash-restart in ./crash
// (alone in its own test binary, because killing the server disturbs every
// test that shares it), and failover to a standby in ./failover (on pairs
// of servers of its own).
//
// The package itself only records figures: every measured number is
// printed as one line
//
//	figure name=<name> value=<value> unit=<unit>
//
// so that go test -v shows it, and appended to the file named by
// $OFFSETSTORE_FIGURES_FILE when that is set.
//
// # Environment
//
// The default run stays within a few minutes. Longer runs:
//
//	OFFSETSTORE_CRASH_CYCLES    kill-and-restart cycles (default 20)
//	OFFSETSTORE_LOAD_DURATION   how long 64 outboxes save concurrently (default 8s)
//	OFFSETSTORE_SPLIT_DURATION  how long two writers race (default 3s)
//	OFFSETSTORE_RESET_DURATION  how long saves run under connection resets (default 2s)
//	OFFSETSTORE_DROP_ROUNDS     replies dropped after COMMIT (default 20)
//	OFFSETSTORE_FAILOVER_CYCLES failovers to a synchronous standby (default 20)
//	OFFSETSTORE_FIGURES_FILE    append every figure line to this file
package reliability
