package localpg

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// EnvBin names a directory holding initdb and postgres, used instead of a
// search. Optional.
const EnvBin = "OFFSETSTORE_PG_BIN"

// ErrNotFound is matched by the error of Find and Start when no
// PostgreSQL server binaries are found. Its message says what to install.
var ErrNotFound = errors.New("no PostgreSQL server binaries (initdb and postgres) found")

// InstallHint says how to get the server binaries on common systems.
const InstallHint = "install PostgreSQL's server package: Debian/Ubuntu `apt-get install postgresql` " +
	"(or a version, e.g. postgresql-15), Fedora/RHEL `dnf install postgresql-server`, macOS `brew install postgresql@17`; " +
	"then initdb and postgres are found on PATH or under /usr/lib/postgresql/*/bin, or set $" + EnvBin + " to their directory"

// searchGlobs are the directories searched besides PATH: distribution
// packages and the usual installs.
var searchGlobs = []string{
	"/usr/lib/postgresql/*/bin",                          // Debian, Ubuntu
	"/usr/pgsql-*/bin",                                   // the PGDG packages of RHEL and Fedora
	"/usr/local/pgsql/bin",                               // a build from source
	"/opt/homebrew/opt/postgresql@*/bin",                 // Homebrew on Apple silicon (keg-only versions)
	"/usr/local/opt/postgresql@*/bin",                    // Homebrew on Intel
	"/Applications/Postgres.app/Contents/Versions/*/bin", // Postgres.app
}

// Binaries is one installation of PostgreSQL's server programs.
type Binaries struct {
	// Dir holds initdb and postgres.
	Dir string
	// Version is what postgres --version reports, e.g. "15.18".
	Version string

	major, minor int
}

// Initdb and Postgres are the paths of the programs.
func (b Binaries) Initdb() string   { return filepath.Join(b.Dir, "initdb") }
func (b Binaries) Postgres() string { return filepath.Join(b.Dir, "postgres") }

// String is "PostgreSQL 15.18 (/usr/lib/postgresql/15/bin)".
func (b Binaries) String() string { return fmt.Sprintf("PostgreSQL %s (%s)", b.Version, b.Dir) }

// Find returns the newest PostgreSQL server binaries of this machine: the
// directory of $OFFSETSTORE_PG_BIN when set, else the newest version among
// initdb on PATH and the directories of searchGlobs (Debian's
// /usr/lib/postgresql/*/bin among them). A directory counts when it holds
// both initdb and postgres and postgres --version answers.
func Find(ctx context.Context) (Binaries, error) {
	if dir := os.Getenv(EnvBin); dir != "" {
		b, err := probe(ctx, dir)
		if err != nil {
			return Binaries{}, fmt.Errorf("$%s=%s: %w", EnvBin, dir, err)
		}
		return b, nil
	}
	return newest(ctx, candidates())
}

// candidates lists the directories to probe: initdb's on PATH first (the
// directory of the program a symbolic link there points to: Homebrew's and
// some distributions' links lead to the installation), then the globs,
// each once.
func candidates() []string {
	var dirs []string
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, g := range searchGlobs {
		m, _ := filepath.Glob(g) // the patterns are valid
		dirs = append(dirs, m...)
	}
	seen := map[string]bool{}
	var out []string
	for _, d := range dirs {
		if r, err := filepath.EvalSymlinks(d); err == nil {
			d = r
		}
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// newest probes dirs and returns the newest version found.
func newest(ctx context.Context, dirs []string) (Binaries, error) {
	var found []Binaries
	var problems []string
	for _, d := range dirs {
		b, err := probe(ctx, d)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		found = append(found, b)
	}
	if len(found) == 0 {
		msg := InstallHint
		if len(problems) > 0 {
			msg = strings.Join(problems, "; ") + "; " + msg
		}
		return Binaries{}, fmt.Errorf("%w: %s", ErrNotFound, msg)
	}
	return slices.MaxFunc(found, func(a, b Binaries) int {
		return cmp.Or(cmp.Compare(a.major, b.major), cmp.Compare(a.minor, b.minor))
	}), nil
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)(?:\.(\d+))?`)

// probe checks that dir holds initdb and a postgres that reports its
// version.
func probe(ctx context.Context, dir string) (Binaries, error) {
	b := Binaries{Dir: dir}
	for _, p := range []string{b.Initdb(), b.Postgres()} {
		if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return Binaries{}, fmt.Errorf("%s: no program %s", dir, filepath.Base(p))
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, b.Postgres(), "--version").Output()
	if err != nil {
		return Binaries{}, fmt.Errorf("%s --version: %v", b.Postgres(), err)
	}
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return Binaries{}, fmt.Errorf("%s --version printed %q, no version", b.Postgres(), strings.TrimSpace(string(out)))
	}
	b.major, _ = strconv.Atoi(string(m[1]))
	b.Version = string(m[1])
	if len(m[2]) > 0 {
		b.minor, _ = strconv.Atoi(string(m[2]))
		b.Version += "." + string(m[2])
	}
	return b, nil
}
