package relay

import (
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/outboxkit/offsetstore/store"
)

// serverLost tells the errors of a server gone (the relay leads again)
// from the others (Run returns them).
func TestServerLost(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"terminated (57P01)", &pgconn.PgError{Code: "57P01"}, true},
		{"connection failure (08006)", fmt.Errorf("save: %w", &pgconn.PgError{Code: "08006"}), true},
		{"read-only (25006)", &pgconn.PgError{Code: "25006"}, true},
		{"socket closed", fmt.Errorf("read: %w", net.ErrClosed), true},
		// A statement on a connection pgx closed after an earlier failure
		// of the same transaction (seen in a failover: "conn closed").
		{"connection closed by pgx", fmt.Errorf("publish: %w", pgconn.ErrConnClosed), true},
		{"opened snapshot lost", fmt.Errorf("save: %w", store.ErrOpenedSnapshotLost), true},
		{"unique violation (23505)", &pgconn.PgError{Code: "23505"}, false},
		{"a sink's own error", errors.New("sink refused"), false},
		{"saves failing, last error a lost server", errors.Join(ErrSaveFailing, &pgconn.PgError{Code: "57P01"}), false},
	} {
		if got := serverLost(c.err); got != c.want {
			t.Errorf("%s: serverLost(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}
