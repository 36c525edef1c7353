// Package crash holds the crash-restart test of offsetstore: PostgreSQL is
// killed with SIGKILL at random moments while a relay saves, and every
// save that was acknowledged must be there after the restart. It is a
// package of its own so that its test binary, and so its server, is not
// shared with any other test.
package crash
