// Package localpg starts a throwaway PostgreSQL from the server binaries
// installed on this machine, for the demo and the integration tests when
// no Docker engine answers.
//
// # Binaries
//
// Find looks for initdb and postgres in the directory of
// $OFFSETSTORE_PG_BIN when it is set, else on PATH and in the usual
// install directories (Debian's /usr/lib/postgresql/*/bin, the PGDG
// packages' /usr/pgsql-*/bin, /usr/local/pgsql/bin, Homebrew's kegs,
// Postgres.app), and takes the newest version. Without any, the error
// matches ErrNotFound and says what to install (InstallHint).
//
// # Server
//
// Start runs initdb into a temporary directory (a superuser with a random
// password, UTF8, the C locale), starts postgres on a free port of
// 127.0.0.1 with no Unix socket, and creates the database. When this
// process is root, both run as the system user postgres, or nobody
// (initdb refuses root), and the directory is theirs. postgres runs as a
// child of this process, in a process group of its own; Stop ends it with
// a fast shutdown and removes the directory. Restart stops it (fast, or
// immediate: no checkpoint, crash recovery at the next start) and starts
// it again on the same port and data, the fault a container's stop or
// kill gives.
//
// # Standby
//
// StartStandby copies a running server's data with pg_basebackup -R into
// a directory of its own and starts it as a hot standby that streams from
// that server, on a free port, for the failover tests. Kill ends a server
// at once (SIGKILL of the postmaster and of every process it started: a
// crash), Halt stops it keeping its data, Resume starts it again.
//
// pg_ctl is not used: it would start the server as a daemon, which
// outlives a killed test binary; a child gets SIGQUIT when its parent
// dies (Linux), and is signalled as pg_ctl stop signals it.
package localpg
