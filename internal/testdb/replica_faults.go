package testdb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The fault controls of a Replicated pair: the primary killed or demoted,
// the standby promoted, stopped, started or built anew.

// KillPrimary kills the primary at once: SIGKILL of its container, or of
// the local server's processes. Its clients' connections break; the slot
// keeps the dead node until Promote.
func (r *Replicated) KillPrimary(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dead {
		return nil
	}
	if err := r.slots[r.primary].node.kill(ctx); err != nil {
		return fmt.Errorf("testdb: kill the primary: %w", err)
	}
	r.dead = true
	return nil
}

// Promote makes the standby the primary (pg_promote) and waits until it
// accepts writes. The old primary, which must have been killed
// (KillPrimary) first, is removed: its slot is empty until AddStandby. A
// stopped standby is started first.
func (r *Replicated) Promote(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.standby {
		return ErrNoStandby
	}
	if !r.dead {
		return errors.New("testdb: promote with the primary alive: kill it first (KillPrimary)")
	}
	s := 1 - r.primary
	node := r.slots[s].node
	if r.down {
		if err := node.start(ctx); err != nil {
			return fmt.Errorf("testdb: start the standby to promote it: %w", err)
		}
		r.down = false
	}
	if err := promote(ctx, node.url()); err != nil {
		return err
	}
	old := r.slots[r.primary].node
	r.setNode(r.primary, nil)
	if err := old.remove(ctx); err != nil {
		return fmt.Errorf("testdb: remove the killed primary: %w", err)
	}
	r.primary, r.standby, r.dead = s, false, false
	return nil
}

// promote promotes the standby at url and waits until it accepts writes.
func promote(ctx context.Context, url string) error {
	return withConn(ctx, url, func(c *pgx.Conn) error {
		var ok bool
		if err := c.QueryRow(ctx, `SELECT pg_promote(true, 60)`).Scan(&ok); err != nil {
			return fmt.Errorf("testdb: promote the standby: %w", err)
		}
		if !ok {
			return errors.New("testdb: promote the standby: not promoted within 60 s")
		}
		for {
			var recovery bool
			if err := c.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&recovery); err != nil {
				return fmt.Errorf("testdb: promoted standby: %w", err)
			}
			if !recovery {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("testdb: promoted standby still in recovery: %w", ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
}

// AddStandby builds a standby of the primary in the empty slot and waits
// until it streams (and, for a synchronous pair, is synchronous).
func (r *Replicated) AddStandby(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.standby {
		return errors.New("testdb: the pair has a standby already")
	}
	if r.demoted {
		return errors.New("testdb: the other slot holds the demoted primary")
	}
	if r.dead {
		return errors.New("testdb: the primary is dead: promote the standby first")
	}
	s := 1 - r.primary
	node, err := r.be.startStandby(ctx, r.slots[s].name, r.slots[r.primary].node, r.slots[r.primary].name)
	if err != nil {
		return fmt.Errorf("testdb: start a standby in slot %d: %w", s, err)
	}
	r.setNode(s, node)
	r.standby = true
	return r.waitStreaming(ctx)
}

// DemotePrimary fences the primary without stopping it, as a failover
// manager that cannot stop an old primary does: it makes it refuse writes
// (ALTER SYSTEM SET default_transaction_read_only = on, and a reload: its
// open sessions fail to write with SQLSTATE 25006 from their next
// transaction on), then promotes the standby. The old primary stays up,
// read-only, in its slot, and a connection to it through URL is refused
// by target_session_attrs=read-write. The pair has no standby after, and
// no slot for one: the promoted server is made asynchronous
// (an empty synchronous_standby_names), or its commits would wait for ever.
func (r *Replicated) DemotePrimary(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.standby || r.down {
		return ErrNoStandby
	}
	if r.dead {
		return errors.New("testdb: the primary is dead")
	}
	err := withConn(ctx, r.slots[r.primary].node.url(), func(c *pgx.Conn) error {
		if _, err := c.Exec(ctx, `ALTER SYSTEM SET default_transaction_read_only = on`); err != nil {
			return err
		}
		_, err := c.Exec(ctx, `SELECT pg_reload_conf()`)
		return err
	})
	if err != nil {
		return fmt.Errorf("testdb: make the primary read-only: %w", err)
	}
	s := 1 - r.primary
	if err := promote(ctx, r.slots[s].node.url()); err != nil {
		return err
	}
	err = withConn(ctx, r.slots[s].node.url(), func(c *pgx.Conn) error {
		if _, err := c.Exec(ctx, `ALTER SYSTEM SET synchronous_standby_names = ''`); err != nil {
			return err
		}
		_, err := c.Exec(ctx, `SELECT pg_reload_conf()`)
		return err
	})
	if err != nil {
		return fmt.Errorf("testdb: make the promoted server asynchronous: %w", err)
	}
	r.primary, r.standby, r.demoted = s, false, true
	return nil
}

// Failover kills the primary, promotes the standby and builds a new
// standby in the old primary's slot. It returns how long the promotion
// (from the kill until the new primary accepted writes) and the new
// standby took.
func (r *Replicated) Failover(ctx context.Context) (promoted, rebuilt time.Duration, err error) {
	t0 := time.Now()
	if err := r.KillPrimary(ctx); err != nil {
		return 0, 0, err
	}
	if err := r.Promote(ctx); err != nil {
		return 0, 0, err
	}
	t1 := time.Now()
	if err := r.AddStandby(ctx); err != nil {
		return t1.Sub(t0), 0, err
	}
	return t1.Sub(t0), time.Since(t1), nil
}

// StopStandby stops the standby (a clean stop). While it is down, commits
// on the primary of a synchronous pair wait for it.
func (r *Replicated) StopStandby(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.standby {
		return ErrNoStandby
	}
	if r.down {
		return nil
	}
	if err := r.slots[1-r.primary].node.stop(ctx); err != nil {
		return fmt.Errorf("testdb: stop the standby: %w", err)
	}
	r.down = true
	return nil
}

// StartStandby starts the standby StopStandby stopped. Unless the primary
// is dead, it waits until the standby streams again.
func (r *Replicated) StartStandby(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.standby {
		return ErrNoStandby
	}
	if !r.down {
		return nil
	}
	if err := r.slots[1-r.primary].node.start(ctx); err != nil {
		return fmt.Errorf("testdb: start the standby: %w", err)
	}
	r.down = false
	if r.dead {
		return nil
	}
	return r.waitStreaming(ctx)
}
