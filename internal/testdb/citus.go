package testdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/moby/moby/api/types/container"
	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
	"github.com/testcontainers/testcontainers-go/network"

	"github.com/outboxkit/offsetstore/migrations"
)

const (
	// EnvCitusImage names the image every Citus node runs.
	EnvCitusImage = "OFFSETSTORE_TEST_CITUS_IMAGE"
	// EnvCitus set to "skip" deselects the Citus suites: SharedCitus and
	// NewCitus skip their test, saying so. Unset, they need Docker.
	EnvCitus = "OFFSETSTORE_TEST_CITUS"
	// DefaultCitusImage is the official Citus image of the pinned version,
	// used when EnvCitusImage is unset.
	DefaultCitusImage = "citusdata/citus:13.2"

	citusDatabase    = "offsetstore"
	citusCoordinator = "coordinator"
	citusPort        = 5432
)

// citusWorkers are the network aliases of the workers.
var citusWorkers = []string{"worker1", "worker2"}

// Cluster is the Citus cluster of this test binary, for the tests that
// check the journal and the store on a distributed journal: a coordinator
// and two workers, one container each, on a Docker network of their own,
// started on first use (SharedCitus) and stopped when the tests end.
//
// # Environment
//
//	OFFSETSTORE_TEST_CITUS_IMAGE  the image of every node (default citusdata/citus:13.2)
//
// The Citus tests need Docker, whatever backend the PostgreSQL tests use
// (the local binaries have no Citus). Without a Docker engine they fail
// with a message of their own, unless they are deselected with
// OFFSETSTORE_TEST_CITUS=skip (then they skip, saying so); without the
// image they fail with a message naming the variable; with -short they
// skip, as the PostgreSQL ones do.
//
// # One table per test
//
// Citus keeps its metadata (nodes, shards, placements) per database, so a
// database per test would need the extension created and both workers
// registered in every one of them: seconds per test. Instead the cluster
// has one database, migrated once, whose journal is distributed by
// persistence_id; each test gets a table of its own in it (NewCitus),
// created LIKE the migrated journal (columns, defaults, checks, primary
// key, compression) and distributed colocated with it, so that its 32
// shards lie on the same workers as the journal's. A test reaches it
// through pgjournal.WithTable(db.Table()). A table in the public schema
// rather than a schema per test: a distributed schema would be one more
// DDL propagated to every worker for each test, and the journal's own
// schema is what a service distributes.
type Cluster struct {
	// URL connects to the coordinator's database as a superuser.
	URL string
	// Image is the image of every node.
	Image string
	// StartTime is how long starting and preparing the cluster took.
	StartTime time.Duration

	admin   *pgxpool.Pool
	net     *testcontainers.DockerNetwork
	coord   *tcpostgres.PostgresContainer
	workers map[string]*tcpostgres.PostgresContainer // by alias
	mu      sync.Mutex                               // serialises StopWorker and StartWorker
	stopped map[string]bool

	freeMu sync.Mutex
	free   []string // emptied tables of finished tests
}

var (
	citusOnce    sync.Once
	citusCluster *Cluster
	citusErr     error
)

// noDockerError is the start error of the cluster when no Docker engine
// answers.
type noDockerError struct{ err error }

func (e *noDockerError) Error() string { return "no Docker engine: " + e.err.Error() }

// ErrUnknownWorker is returned by StartWorker for a name that is not one
// of the cluster's workers.
var ErrUnknownWorker = errors.New("testdb: no such Citus worker")

// SharedCitus returns the Citus cluster of this test binary, starting it
// on first use. It fails the test when no cluster can be had, and skips it
// under -short.
func SharedCitus(t testing.TB) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs a Citus cluster; skipped with -short")
	}
	if v := os.Getenv(EnvCitus); v == "skip" {
		t.Skipf("Citus suite deselected by $%s=skip", EnvCitus)
	} else if v != "" {
		t.Fatalf("testdb: $%s=%s: want skip, or unset to run the Citus suites", EnvCitus, v)
	}
	citusOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if err := DockerEngine(ctx); err != nil {
			citusErr = &noDockerError{err}
			return
		}
		citusCluster, citusErr = startCitus(ctx)
	})
	var noDocker *noDockerError
	if errors.As(citusErr, &noDocker) {
		t.Fatalf("testdb: the Citus suites need Docker (a coordinator and two workers, one container each), "+
			"and no Docker engine answered: %v\n"+
			"Start Docker, or deselect the Citus suites with %s=skip.", noDocker.err, EnvCitus)
	}
	if citusErr != nil {
		t.Fatalf("testdb: no Citus cluster for integration tests: %v\n"+
			"Make a Docker engine available and set $%s to a Citus 13 image "+
			"(default %s; where no registry is reachable, build localhost/citus:13 "+
			"with ../shared/tools/citus-image.sh); run go test -short for unit tests only.",
			citusErr, EnvCitusImage, DefaultCitusImage)
	}
	return citusCluster
}

// closeCitus stops the cluster, if one was started, and with -v reports
// its start time and the tables made. Main calls it.
func closeCitus() {
	if citusCluster == nil {
		return
	}
	citusCluster.close()
	if testing.Verbose() {
		ct := &citusCreateTime
		ct.mu.Lock()
		defer ct.mu.Unlock()
		mean := time.Duration(0)
		if ct.n > 0 {
			mean = ct.total / time.Duration(ct.n)
		}
		fmt.Printf("testdb: Citus cluster started in %v; %d distributed tables created, mean %v, max %v\n",
			citusCluster.StartTime.Round(time.Millisecond), ct.n, mean.Round(time.Millisecond), ct.max.Round(time.Millisecond))
	}
}

func startCitus(ctx context.Context) (_ *Cluster, err error) {
	begin := time.Now()
	c := &Cluster{
		Image:   os.Getenv(EnvCitusImage),
		workers: map[string]*tcpostgres.PostgresContainer{},
		stopped: map[string]bool{},
	}
	if c.Image == "" {
		c.Image = DefaultCitusImage
	}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	c.net, err = network.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("create network: %w", err)
	}
	// The three nodes start in parallel.
	aliases := append([]string{citusCoordinator}, citusWorkers...)
	ctrs := make([]*tcpostgres.PostgresContainer, len(aliases))
	errs := make([]error, len(aliases))
	var wg sync.WaitGroup
	for i, alias := range aliases {
		wg.Go(func() { ctrs[i], errs[i] = c.runNode(ctx, alias) })
	}
	wg.Wait()
	c.coord = ctrs[0]
	for i, alias := range citusWorkers {
		if ctrs[i+1] != nil {
			c.workers[alias] = ctrs[i+1]
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c.URL, err = c.coord.ConnectionString(ctx, "sslmode=disable")
	if err != nil {
		return nil, fmt.Errorf("coordinator connection string: %w", err)
	}
	c.admin, err = pgxpool.New(ctx, c.URL)
	if err != nil {
		return nil, fmt.Errorf("connect to the coordinator: %w", err)
	}
	if _, err := c.admin.Exec(ctx, `SELECT citus_set_coordinator_host($1, $2)`, citusCoordinator, citusPort); err != nil {
		return nil, fmt.Errorf("citus_set_coordinator_host: %w", err)
	}
	for _, w := range citusWorkers {
		if _, err := c.admin.Exec(ctx, `SELECT citus_add_node($1, $2)`, w, citusPort); err != nil {
			return nil, fmt.Errorf("citus_add_node(%s): %w", w, err)
		}
	}
	if err := migrations.Up(ctx, c.URL); err != nil {
		return nil, fmt.Errorf("migrate the coordinator: %w", err)
	}
	if _, err := c.admin.Exec(ctx, `SELECT create_distributed_table('journal', 'persistence_id')`); err != nil {
		return nil, fmt.Errorf("distribute the journal: %w", err)
	}
	c.StartTime = time.Since(begin)
	return c, nil
}

// runNode starts one node. Nodes reach each other by alias, without a
// password: trust on the cluster's own network.
func (c *Cluster) runNode(ctx context.Context, alias string) (*tcpostgres.PostgresContainer, error) {
	ctr, err := tcpostgres.Run(ctx, c.Image,
		tcpostgres.WithDatabase(citusDatabase),
		tcpostgres.WithUsername("offsetstore"),
		tcpostgres.WithPassword("offsetstore"),
		tcpostgres.BasicWaitStrategies(),
		testcontainers.WithEnv(map[string]string{"POSTGRES_HOST_AUTH_METHOD": "trust"}),
		// Every session on the coordinator may open one to each worker.
		testcontainers.WithCmd("postgres", "-c", "max_connections=300"),
		network.WithNetwork([]string{alias}, c.net),
		// A stopped node's alias no longer resolves; Docker's resolver
		// then asks the upstream servers, and where none answer (as on
		// machines without outside access) glibc waits 4 × 5 s before it
		// gives up. One try of one second each keeps a node outage a
		// matter of seconds, as a refused connection would be.
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.DNSOptions = []string{"timeout:1", "attempts:1"}
		}),
	)
	if err != nil {
		return ctr, fmt.Errorf("start Citus node %s (image %s): %w", alias, c.Image, err)
	}
	return ctr, nil
}

func (c *Cluster) close() {
	if c.admin != nil {
		c.admin.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for _, ctr := range append([]*tcpostgres.PostgresContainer{c.coord}, workerList(c.workers)...) {
		if ctr != nil {
			wg.Go(func() { _ = testcontainers.TerminateContainer(ctr, testcontainers.StopContext(ctx)) })
		}
	}
	wg.Wait()
	if c.net != nil {
		_ = c.net.Remove(ctx)
	}
}

func workerList(m map[string]*tcpostgres.PostgresContainer) []*tcpostgres.PostgresContainer {
	var l []*tcpostgres.PostgresContainer
	for _, ctr := range m {
		l = append(l, ctr)
	}
	return l
}

// CitusDB is one test's distributed journal table on the shared cluster.
type CitusDB struct {
	// Schema and Name name the test's journal table; pass them to
	// pgjournal.WithTable.
	Schema, Name string
	// URL connects to the coordinator's database.
	URL string
	// Pool is a pool on the coordinator, closed when the test ends.
	Pool *pgxpool.Pool
	// Cluster is the shared cluster.
	Cluster *Cluster
}

// NewCitus gives t an empty distributed journal table, colocated with the
// migrated journal, and a pool on the coordinator. The pool is closed when
// t ends and the table emptied (TRUNCATE) for a later test: creating a
// distributed table of 32 shards, and dropping it, costs a few hundred
// milliseconds each, a TRUNCATE of it about ten. Tests must not change the
// table's definition or grants.
func NewCitus(t testing.TB) *CitusDB {
	t.Helper()
	c := SharedCitus(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name, err := c.takeTable(ctx)
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	d := &CitusDB{Schema: "public", Name: name, URL: c.URL, Cluster: c}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.giveBack(ctx, d.Ident(), name); err != nil {
			t.Errorf("testdb: %v", err)
		}
	})
	d.Pool = d.NewPool(t, nil)
	return d
}

// takeTable returns the name of an empty journal table: one a finished
// test gave back, or a new one.
func (c *Cluster) takeTable(ctx context.Context) (string, error) {
	c.freeMu.Lock()
	if n := len(c.free); n > 0 {
		name := c.free[n-1]
		c.free = c.free[:n-1]
		c.freeMu.Unlock()
		return name, nil
	}
	c.freeMu.Unlock()
	start := time.Now()
	name := "journal_" + randomSuffix()
	ident := pgx.Identifier{"public", name}.Sanitize()
	if _, err := c.admin.Exec(ctx, `CREATE TABLE `+ident+` (LIKE public.journal INCLUDING ALL)`); err != nil {
		return "", fmt.Errorf("create table %s: %w", ident, err)
	}
	if _, err := c.admin.Exec(ctx, `SELECT create_distributed_table($1, 'persistence_id', colocate_with => 'journal')`, ident); err != nil {
		return "", fmt.Errorf("distribute table %s: %w", ident, err)
	}
	citusCreateTime.add(time.Since(start))
	return name, nil
}

// giveBack empties a test's table for the next test; a table that cannot
// be emptied is dropped instead.
func (c *Cluster) giveBack(ctx context.Context, ident, name string) error {
	_, err := c.admin.Exec(ctx, `TRUNCATE `+ident)
	if err == nil {
		c.freeMu.Lock()
		c.free = append(c.free, name)
		c.freeMu.Unlock()
		return nil
	}
	if _, derr := c.admin.Exec(ctx, `DROP TABLE IF EXISTS `+ident); derr != nil {
		return fmt.Errorf("empty table %s: %w; drop it: %w", ident, err, derr)
	}
	return nil
}

// citusCreateTime measures the creation of distributed tables.
var citusCreateTime durations

// Table returns the schema and name of the test's journal table, in the
// order pgjournal.WithTable takes them.
func (d *CitusDB) Table() (schema, name string) { return d.Schema, d.Name }

// Ident is the quoted, schema-qualified name of the test's table, for raw
// SQL in tests.
func (d *CitusDB) Ident() string { return pgx.Identifier{d.Schema, d.Name}.Sanitize() }

// NewPool opens another pool on the coordinator, closed when t ends.
// configure, if not nil, may change the config first.
func (d *CitusDB) NewPool(t testing.TB, configure func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	return openPool(t, d.URL, "the coordinator", configure)
}

// WorkerOf returns the alias of the worker that holds the shard of the
// test's table where persistenceID's rows live.
func (d *CitusDB) WorkerOf(ctx context.Context, persistenceID string) (string, error) {
	var node string
	err := d.Cluster.admin.QueryRow(ctx,
		`SELECT nodename FROM citus_shards
		  WHERE table_name = $1::regclass
		    AND shardid = get_shard_id_for_distribution_column($1::regclass, $2::text)`,
		d.Ident(), persistenceID).Scan(&node)
	if err != nil {
		return "", fmt.Errorf("testdb: find the worker of %q: %w", persistenceID, err)
	}
	return node, nil
}

// StopWorker stops the worker that holds persistenceID's shard (a clean
// stop of its container: its sessions end, its address disappears from
// the network) and returns its alias for StartWorker. The rest of the
// cluster keeps running. Every test on the cluster sees the outage: tests
// that stop a worker must not run in parallel with other Citus tests.
// The worker is started again when t ends, if the test has not done so.
func (d *CitusDB) StopWorker(ctx context.Context, t testing.TB, persistenceID string) (string, error) {
	t.Helper()
	w, err := d.WorkerOf(ctx, persistenceID)
	if err != nil {
		return "", err
	}
	c := d.Cluster
	c.mu.Lock()
	defer c.mu.Unlock()
	ctr, ok := c.workers[w]
	if !ok {
		return "", fmt.Errorf("%w: %q", ErrUnknownWorker, w)
	}
	timeout := 10 * time.Second
	if err := ctr.Stop(ctx, &timeout); err != nil {
		return "", fmt.Errorf("testdb: stop worker %s: %w", w, err)
	}
	c.stopped[w] = true
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.StartWorker(ctx, w); err != nil {
			t.Errorf("testdb: restart worker %s after the test: %v", w, err)
		}
	})
	return w, nil
}

// StartWorker starts a worker StopWorker stopped and waits until the
// coordinator reaches it again. It does nothing for a running worker.
func (c *Cluster) StartWorker(ctx context.Context, worker string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctr, ok := c.workers[worker]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownWorker, worker)
	}
	if !c.stopped[worker] {
		return nil
	}
	if err := ctr.Start(ctx); err != nil {
		return fmt.Errorf("testdb: start worker %s: %w", worker, err)
	}
	for {
		var ok bool
		err := c.admin.QueryRow(ctx, `SELECT citus_check_connection_to_node($1, $2)`, worker, citusPort).Scan(&ok)
		if err == nil && ok {
			c.stopped[worker] = false
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testdb: worker %s not reachable from the coordinator after start: %w (last: ok=%v, %v)", worker, ctx.Err(), ok, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
