package console

import (
	"maps"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

func TestParseConnString(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"postgres://u:p@h:5432/db?sslmode=disable":                                         "postgres://u:p@h:5432/db?sslmode=disable",
		"pgx5://u:p@h/db?sslmode=disable&x-migrations-table=offsetstore_schema_migrations": "postgres://u:p@h/db?sslmode=disable",
		"PGX://h/db":                       "postgres://h/db",
		"host=h dbname=db sslmode=disable": "host=h dbname=db sslmode=disable",
		"":                                 "",
	} {
		cfg, err := ParseConnString(in)
		if err != nil {
			t.Errorf("ParseConnString(%q): %v", in, err)
			continue
		}
		wantCfg, err := pgxpool.ParseConfig(want)
		if err != nil {
			t.Fatal(err)
		}
		got, exp := cfg.ConnConfig, wantCfg.ConnConfig
		if got.Host != exp.Host || got.Port != exp.Port || got.Database != exp.Database || got.User != exp.User ||
			got.Password != exp.Password || !maps.Equal(got.RuntimeParams, exp.RuntimeParams) || (got.TLSConfig == nil) != (exp.TLSConfig == nil) {
			t.Errorf("ParseConnString(%q) = %+v, want as %q: %+v", in, got, want, exp)
		}
	}
	if _, err := ParseConnString("postgres://h/db?x-migrations-table=t&search_path=ops"); err != nil {
		t.Errorf("x- parameters beside a server setting: %v", err)
	}
}
