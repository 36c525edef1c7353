package pgjournal

import (
	"encoding/binary"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/outboxkit/offsetstore/journal"
)

// rowScanner turns the rows of a Replay (or of a read of many streams)
// into events with as few
// allocations as the caller's ownership allows: per row, the payload, and
// for a row with tags, their slice and one string that all of them share.
// Everything else is scanned into reused variables: manifest and writer
// uuid as driver bytes, which become a new string only when they differ
// from the previous row's (in a stream they rarely do).
//
// Tags in pgx's binary format are decoded here (pgx would allocate the
// array's dimensions and every element); in the text format (a pool in
// QueryExecModeSimpleProtocol) pgx decodes them.
type rowScanner struct {
	seq       int64
	payload   []byte
	manifest  pgtype.DriverBytes
	writer    pgtype.DriverBytes
	tags      []string
	writtenAt time.Time

	lastManifest, lastWriter string

	// withPID: the rows have a seventh column, the persistence id (reads
	// of many streams), kept as a string shared by the rows of a stream.
	withPID bool
	pid     pgtype.DriverBytes
	lastPID string

	dest    []any // nil until the first row
	rawTags bool  // dest skips tags: decode them from the raw value
}

// tagsColumn is the index of tags in the columns Replay selects.
const tagsColumn = 4

// scan reads the row rows is on, of stream pid (or of the stream its
// seventh column names, withPID).
func (s *rowScanner) scan(rows pgx.Rows, pid string) (journal.Event, error) {
	if s.dest == nil {
		fd := rows.FieldDescriptions()[tagsColumn]
		s.rawTags = fd.Format == pgtype.BinaryFormatCode && fd.DataTypeOID == pgtype.TextArrayOID
		s.dest = []any{&s.seq, &s.payload, &s.manifest, &s.writer, &s.tags, &s.writtenAt}
		if s.withPID {
			s.dest = append(s.dest, &s.pid)
		}
		if s.rawTags {
			s.dest[tagsColumn] = nil // pgx skips a nil destination
		}
	}
	if err := rows.Scan(s.dest...); err != nil {
		return journal.Event{}, err
	}
	if s.rawTags {
		raw := rows.RawValues()[tagsColumn]
		var ok bool
		if s.tags, ok = decodeTags(raw); !ok { // not a plain one-dimensional array: pgx knows the rest
			fd := rows.FieldDescriptions()[tagsColumn]
			if err := rows.Conn().TypeMap().Scan(fd.DataTypeOID, fd.Format, raw, &s.tags); err != nil {
				return journal.Event{}, err
			}
		}
	}
	if string(s.manifest) != s.lastManifest {
		s.lastManifest = string(s.manifest)
	}
	if string(s.writer) != s.lastWriter {
		s.lastWriter = string(s.writer)
	}
	if s.withPID {
		if string(s.pid) != s.lastPID {
			s.lastPID = string(s.pid)
		}
		pid = s.lastPID
	}
	if len(s.tags) == 0 {
		s.tags = nil // as the in-memory journal: no tags is nil
	}
	ev := journal.Event{
		PersistenceID: pid,
		SequenceNr:    uint64(s.seq),
		Payload:       nonNil(s.payload),
		Manifest:      s.lastManifest,
		WriterUUID:    s.lastWriter,
		Tags:          s.tags,
		WrittenAt:     s.writtenAt,
	}
	// pgx and decodeTags make a new slice for every payload and array;
	// drop ours so that no two events can ever share one.
	s.payload, s.tags = nil, nil
	return ev, nil
}

// decodeTags decodes a text[] in PostgreSQL's binary format (array_send):
//
//	int32 ndim, int32 has-nulls flag, uint32 element type,
//	ndim × {int32 length, int32 lower bound},
//	length × {int32 byte length (-1 for NULL), bytes}
//
// It handles what Append writes, an empty or one-dimensional array
// without NULLs, and reports false for anything else (multi-dimensional,
// NULL elements, malformed), leaving it to pgx. The strings share one
// allocation.
func decodeTags(src []byte) ([]string, bool) {
	be := binary.BigEndian
	if len(src) < 12 {
		return nil, false
	}
	switch be.Uint32(src) {
	case 0:
		if len(src) != 12 {
			return nil, false
		}
		return []string{}, true
	case 1:
	default:
		return nil, false
	}
	if len(src) < 20 {
		return nil, false
	}
	n := int(int32(be.Uint32(src[12:])))
	elems := src[20:]
	if n < 0 || n > len(elems)/4 {
		return nil, false
	}
	total := 0
	for i, p := 0, elems; i < n; i++ {
		if len(p) < 4 {
			return nil, false
		}
		size := int(int32(be.Uint32(p)))
		if size < 0 || size > len(p)-4 {
			return nil, false
		}
		total += size
		p = p[4+size:]
		if i == n-1 && len(p) != 0 {
			return nil, false
		}
	}
	if n == 0 && len(elems) != 0 {
		return nil, false
	}
	var all strings.Builder
	all.Grow(total)
	for i, p := 0, elems; i < n; i++ {
		size := int(be.Uint32(p))
		all.Write(p[4 : 4+size])
		p = p[4+size:]
	}
	joined := all.String()
	tags := make([]string, n)
	for i, p, at := 0, elems, 0; i < n; i++ {
		size := int(be.Uint32(p))
		tags[i] = joined[at : at+size]
		at += size
		p = p[4+size:]
	}
	return tags, true
}
