// Package leader elects one active relay per outbox with a PostgreSQL
// session advisory lock, held on a connection of its own, so that standby
// relays wait instead of fencing each other in turns.
//
// # Use
//
// Take the leadership before opening the store, publish under the lease's
// context, and stop when it is done:
//
//	lease, err := leader.Acquire(ctx, pool, "orders") // blocks while another relay leads
//	if err != nil { … }
//	defer lease.Release(context.Background())
//	st, err := store.Open(lease.Context(), pgjournal.New(pool), "orders")
//	… publish and save under lease.Context() until it is done …
//
// TryAcquire tries once and reports whether it got the lease. A relay that
// lost its lease (Lost is closed, Err matches ErrLost) stops publishing,
// and may call Acquire again to stand by. Fencing in the store stays the
// safety net below the election: a relay that kept writing after losing
// its lease is fenced at its next save.
//
// # How it works
//
// Acquire opens a connection with the pool's connection config (not one
// of the pool's connections, so the pool is unaffected) and runs
// pg_advisory_lock(Key(outbox)) there; the lock lives as long as that
// session. While it leads, the lease waits for the server's next message
// on the connection, which returns the moment the server ends the session,
// and pings every session timeout / 5 (see WithSessionTimeout).
//
// # Bounds
//
// With session timeout d (WithSessionTimeout, default 10 s):
//
//   - Release, process exit or kill, pg_terminate_backend, server shutdown
//     or crash: the leader's Lost fires at once (the server's FATAL, or the
//     closed socket) and a waiting standby is granted the lock at once
//     (measured here: 2–20 ms; after a restart, as soon as the server is
//     back and the standby's retry reconnects). Both happen at once, so a
//     save the old leader had in flight on another connection may still
//     land after the standby opened the store: fencing decides which of the
//     two wins.
//   - A silent network loss (no FIN, no RST): the leader's Lost fires
//     within 2d/5, when a ping goes unanswered; the server ends the
//     leader's session within d of its last ping (idle_session_timeout),
//     and the standby takes over then. The leader stops before the
//     standby starts, unless the leader's process stalls for longer than
//     about 3d/5.
//   - A standby whose own connection is silently lost leaves the lock
//     queue within 2d (lock_timeout renews each wait every d).
//
// The session settings that make these bounds (idle_session_timeout,
// lock_timeout, client_connection_check_interval, tcp_keepalives_*,
// tcp_user_timeout; statement_timeout off) are sent when the lease's
// connection starts and apply to that session only.
//
// # Requirements
//
// PostgreSQL 14 or later (idle_session_timeout), reached directly or
// through a session-pooling proxy: a transaction-pooling PgBouncer cannot
// hold a session lock. Advisory locks are per database and per server:
// every relay of an outbox must connect to the same database, and on
// Citus to the same coordinator. The lock key is documented at Key.
package leader
