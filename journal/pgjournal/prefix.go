package pgjournal

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/outboxkit/offsetstore/journal"
)

// listPrefixSQL is PersistenceIDs with ListOptions.Prefix ($2), the loose
// index scan of listSQL with the prefix as a filter. The parameters are $1
// After, $2 the prefix, $3 the excluded prefix when exclude, and the limit
// last.
//
// bytewise: the persistence_id column's collation orders as bytes (C,
// POSIX, ucs_basic, a builtin locale), so the ids that start with the
// prefix are one run of the index from the prefix on: the scan starts at
// the prefix and stops at the first id without it, one index descent per
// listed id and one more. Otherwise (a libc or ICU locale, where
// "outbox::x" may sort after "outboxa") no range of the index holds them
// all, and the scan visits every id above After: one descent per stream of
// the table, still no row of the streams in between.
func listPrefixSQL(t string, bytewise, exclude bool) string {
	start, more := ``, ``
	if bytewise {
		start = ` AND persistence_id >= $2::text`
		more = ` AND starts_with(ids.pid, $2::text)`
	}
	filter, limit := ` AND starts_with(pid, $2::text)`, `$3`
	if exclude {
		filter, limit = filter+` AND NOT starts_with(pid, $3::text)`, `$4`
	}
	return `WITH RECURSIVE ids(pid) AS (
    (SELECT persistence_id FROM ` + t + ` WHERE persistence_id > $1::text` + start + ` ORDER BY persistence_id LIMIT 1)
  UNION ALL
    SELECT (SELECT persistence_id FROM ` + t + ` WHERE persistence_id > ids.pid ORDER BY persistence_id LIMIT 1)
      FROM ids
     WHERE ids.pid IS NOT NULL` + more + `
)
SELECT pid FROM ids WHERE pid IS NOT NULL` + filter + ` LIMIT ` + limit + `::bigint`
}

// listPrefixDistinctSQL is listPrefixSQL on a Citus table (WithCitus): the
// DISTINCT of listDistinctSQL with the prefix as a filter, from the prefix
// on where the collation orders as bytes. Each shard reads its index from
// there.
func listPrefixDistinctSQL(t string, bytewise, exclude bool) string {
	filter, limit := ` AND starts_with(persistence_id, $2::text)`, `$3`
	if bytewise {
		filter += ` AND persistence_id >= $2::text`
	}
	if exclude {
		filter, limit = filter+` AND NOT starts_with(persistence_id, $3::text)`, `$4`
	}
	return `SELECT DISTINCT persistence_id FROM ` + t + `
 WHERE persistence_id > $1::text` + filter + `
 ORDER BY persistence_id LIMIT ` + limit + `::bigint`
}

// sqlCollation reads the collation of the table's persistence_id column
// and the database's default one, as JSON so that the columns each server
// version has or lacks (pg_database.datlocprovider since 15, datlocale
// since 17) need no statement of their own. $1 is the quoted table name.
const sqlCollation = `SELECT to_jsonb(c), to_jsonb(d)
  FROM pg_attribute a
  JOIN pg_collation c ON c.oid = a.attcollation
 CROSS JOIN (SELECT * FROM pg_database WHERE datname = current_database()) d
 WHERE a.attrelid = $1::regclass AND a.attname = 'persistence_id'`

// collation caches whether the table's persistence_id column orders as
// bytes. It is read once per Journal, on the first listing with a prefix;
// a failed read is not kept.
type collation struct {
	mu       sync.Mutex
	known    bool
	bytewise bool
}

// bytewise reports whether the persistence_id column of j's table orders
// as bytes.
func (j *Journal) bytewise(ctx context.Context) (bool, error) {
	c := j.collation
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.known {
		return c.bytewise, nil
	}
	var coll, db []byte
	if err := j.db.QueryRow(ctx, sqlCollation, j.ident.Sanitize()).Scan(&coll, &db); err != nil {
		return false, j.interpretError(ctx, "read the collation of persistence_id", err, nil)
	}
	b, err := bytewiseCollation(coll, db)
	if err != nil {
		return false, fmt.Errorf("pgjournal: read the collation of persistence_id: %w", err)
	}
	c.known, c.bytewise = true, b
	return b, nil
}

// bytewiseCollation decides from the rows of pg_collation and pg_database
// (as JSON) whether a collation orders valid UTF-8 text as bytes: C and
// POSIX (libc), ucs_basic, and the builtin provider's locales (C,
// C.UTF-8: code point order). Anything else, libc's C.UTF-8 included
// (whose order varies with the C library), is taken as linguistic.
func bytewiseCollation(coll, db []byte) (bool, error) {
	var c, d map[string]any
	if err := json.Unmarshal(coll, &c); err != nil {
		return false, err
	}
	if err := json.Unmarshal(db, &d); err != nil {
		return false, err
	}
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	isC := func(locale string) bool { return locale == "C" || locale == "POSIX" }
	name, provider := str(c, "collname"), str(c, "collprovider")
	switch {
	case isC(name) || name == "ucs_basic":
		return true, nil
	case name == "default":
		switch str(d, "datlocprovider") {
		case "", "c": // libc (before 15 the only provider of the default)
			return isC(str(d, "datcollate")), nil
		case "b":
			return true, nil
		default:
			return false, nil
		}
	case provider == "c":
		return isC(str(c, "collcollate")), nil
	case provider == "b":
		return true, nil
	}
	return false, nil
}

// prefixedIDs is PersistenceIDs with opts.Prefix set (opts validated).
func (j *Journal) prefixedIDs(ctx context.Context, opts journal.ListOptions) ([]string, error) {
	bytewise, err := j.bytewise(ctx)
	if err != nil {
		return nil, err
	}
	exclude := opts.ExcludePrefix != ""
	sql := listPrefixSQL(j.ident.Sanitize(), bytewise, exclude)
	if j.citus {
		sql = listPrefixDistinctSQL(j.ident.Sanitize(), bytewise, exclude)
	}
	args := []any{opts.After, opts.Prefix}
	if exclude {
		args = append(args, opts.ExcludePrefix)
	}
	args = append(args, int64(opts.Limit))
	return j.queryIDs(ctx, sql, opts.Limit, args...)
}
