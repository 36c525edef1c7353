// Package monitor tells whether the relays of a journal keep up: for each
// outbox its lag (events not yet published), its lag time (the age of the
// oldest of them), the age of its newest snapshot, and a status judged
// over a window of polls, in Burrow's words (OK, WARN, STOP, REWIND, ERR,
// NOTFOUND). The exporter of cmd/offsetstore (status, serve) is built on
// it; a service that wants a health endpoint of its own calls it the same
// way.
//
// # Reading
//
// A Monitor reads the journal only (SELECT): each outbox's snapshot through
// store.Open (decoded again only when the outbox's stream moved), and the
// lag of every key in one journal.LagReader call (pgjournal: one index
// probe per key and one more per key behind, pipelined in one round trip,
// only the keys behind coming back). A poll of an outbox of 100 000 keys
// is a handful of round trips whatever the number of keys.
//
//	lag      = Σ over keys of max(0, highest sequence number of the stream − offset)
//	lag_max  = the largest of those
//	lag time = now − written_at of the first event above each key's offset,
//	           the oldest over keys; 0 when nothing waits
//
// # Streams the relay has not seen
//
// A stream with events that no monitored outbox has a key for is one no
// relay has published from yet. With UnseenCount (the default) it counts
// as a key at offset 0 of the outbox whose keys are nearest to it (the
// longest prefix shared with a neighbouring key), so that a relay that
// died while new aggregates got events is not OK, while outboxes that
// each follow their own streams do not count each other's. The streams
// are found by listing the journal a page per poll (WithDiscoveryPage). A
// journal with streams that no relay follows wants UnseenIgnore, or those
// streams would be lag forever.
//
// # Status
//
// Evaluate judges a window of polls (see there for the rules). A quiet
// outbox, nothing waiting, is OK however old its snapshot; a relay that
// died with events waiting is STOP once the oldest has waited longer than
// the threshold and no snapshot came for as long; a relay slower than its
// producers is WARN; an operator's rewind is REWIND for a window; a
// snapshot that cannot be read is ERR.
//
// Ages are measured with the monitor's clock against written_at, which
// the database server sets: keep the clocks in step.
package monitor
