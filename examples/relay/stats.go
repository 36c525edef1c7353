package relay

// Stats counts what a relay did since New.
type Stats struct {
	// Leaderships is the number of leases taken.
	Leaderships int64
	// Published is the number of events delivered: Publish returned nil,
	// an ack came with nil, or a PublishTx transaction committed.
	Published int64
	// Saves is the number of saves of the offsets: the committers'
	// successful saves, or committed transactions with PublishTx.
	Saves int64
	// Reopens counts reopens of the store after an operator's change.
	Reopens int64
	// Fenced counts fencings by another relay: each reopens the store
	// while the lease is held (the writer was a former leader), or ends
	// the leadership when it is not, or after repeated fencings.
	Fenced int64
	// IdlePasses counts passes that found nothing new to publish: the
	// relay had caught up with every stream it knows.
	IdlePasses int64
	// Passes counts the reads of the feed (0 on a journal without one).
	Passes int64
	// Read counts the events the relay read from the journal (catch-up
	// scans and reads of the streams the feed reported), on the feed.
	Read int64
	// Sweeps counts the sweeps of every stream's head on a feed that may
	// miss a commit (Config.SweepEvery).
	Sweeps int64
	// Opened is the sequence number of the snapshot loaded by the latest
	// store.Open (0 for none).
	Opened uint64
	// Snapshot is the sequence number of the newest snapshot the relay's
	// store wrote or loaded.
	Snapshot uint64

	// SaveErrors counts the failed saves of the offsets: the committers'
	// failed attempts, and with PublishTx the transactions run again
	// after a lock timeout (see Config.PublishTx).
	SaveErrors int64
	// LastSaveError is the error of the latest failed save while saves
	// fail; nil once a save succeeds.
	LastSaveError error
	// Unsaved is the number of events published (Publish returned nil, or
	// their ack came) whose offsets are not yet known to be saved: what
	// the next leader would publish again after a crash now. At most
	// Config.MaxUnsaved, plus the acks in flight with PublishAsync. Once
	// a leadership ended, what it left unsaved (0 after a final flush that
	// saved everything). Always 0 with PublishTx.
	Unsaved int64
	// Paused counts the pauses of publishing because Unsaved reached
	// Config.MaxUnsaved.
	Paused int64
}

// Stats returns what the relay did so far. It is safe to call while Run
// runs.
func (r *Relay) Stats() Stats {
	r.mu.Lock()
	saves, saveErrors, lastErr, unsaved := r.saved, r.saveErrors, r.lastErr, r.unsavedEnd
	if r.committer != nil {
		cs := r.committer.Stats()
		saves += cs.Saves
		saveErrors += cs.SaveErrors
		unsaved = r.window.unsaved()
	}
	r.mu.Unlock()
	return Stats{
		SaveErrors:    saveErrors + r.txSaveErrors.Load(),
		LastSaveError: lastErr,
		Unsaved:       unsaved,
		Paused:        r.paused.Load(),
		Leaderships:   r.leaderships.Load(),
		Published:     r.published.Load(),
		Saves:         saves + r.saves.Load(),
		Reopens:       r.reopens.Load(),
		Fenced:        r.fenced.Load(),
		IdlePasses:    r.idle.Load(),
		Passes:        r.passes.Load(),
		Read:          r.read.Load(),
		Sweeps:        r.sweeps.Load(),
		Opened:        r.opened.Load(),
		Snapshot:      r.snapshot.Load(),
	}
}

// setLastSaveError records Stats.LastSaveError.
func (r *Relay) setLastSaveError(err error) {
	r.mu.Lock()
	r.lastErr = err
	r.mu.Unlock()
}
