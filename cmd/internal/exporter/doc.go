// Package exporter is the HTTP side of `offsetstore serve`: the
// Prometheus metrics, the JSON status and the status page of a
// monitor.Monitor's reports, and the JSON document `offsetstore status
// --json` prints.
//
// # Metrics
//
// Gauges labelled outbox, read from the monitor's last poll at every
// scrape, on a registry of the exporter's own (nothing is registered
// globally):
//
//	offsetstore_lag_events              Σ over keys of stream head − offset
//	offsetstore_lag_max_events          the largest key's
//	offsetstore_lag_seconds             age of the oldest event not yet published (0: none)
//	offsetstore_snapshot_age_seconds    now − written_at of the newest snapshot
//	offsetstore_snapshot_sequence_nr    the newest snapshot's sequence number
//	offsetstore_keys                    keys of the newest snapshot
//	offsetstore_unseen_streams          streams counted without a key
//	offsetstore_status{outbox,status}   1 for the current status, 0 for the others
//
// and, without labels, offsetstore_up (1 when the last poll read the
// journal) and offsetstore_poll_duration_seconds.
package exporter
