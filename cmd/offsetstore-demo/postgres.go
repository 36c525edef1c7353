package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/url"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"

	"github.com/outboxkit/offsetstore/internal/localpg"
	"github.com/outboxkit/offsetstore/internal/testdb"
)

// The demo starts the image the tests use.
const (
	envImage     = testdb.EnvImage
	defaultImage = testdb.DefaultImage
)

// The values of --backend.
const (
	backendAuto      = "auto"
	backendContainer = "container"
	backendLocal     = "local"
)

// startPostgres starts the PostgreSQL of the demo: a container when
// --backend is container, or auto and a Docker engine answers; else one
// from the local binaries. It prints which, and returns the URL and a
// function that stops the server and removes what it made.
func (a *app) startPostgres(ctx context.Context, f *demoFlags) (string, func(), error) {
	backend := f.backend
	why := ""
	if backend == backendAuto {
		backend = backendContainer
		if dockerErr := testdb.DockerEngine(ctx); dockerErr != nil {
			if _, err := localpg.Find(ctx); err != nil {
				return "", nil, fmt.Errorf("no PostgreSQL for the demo: no Docker engine answered (%v), and %w\n"+
					"Start Docker, or %s, or pass --database-url", dockerErr, err, localpg.InstallHint)
			}
			backend, why = backendLocal, fmt.Sprintf(" (no Docker engine answered: %v)", dockerErr)
		}
	}
	if backend == backendLocal {
		return a.startLocal(ctx, why)
	}
	return a.startContainer(ctx, f)
}

// startLocal starts a throwaway server from the local binaries.
func (a *app) startLocal(ctx context.Context, why string) (string, func(), error) {
	b, err := localpg.Find(ctx)
	if err != nil {
		return "", nil, fmt.Errorf("start PostgreSQL from local binaries: %w\nor start Docker (--backend container), or pass --database-url", err)
	}
	fmt.Fprintf(a.stdout, "postgres: backend: local binaries, %s%s\n", b, why)
	start := time.Now()
	s, err := localpg.Start(ctx, localpg.WithBinaries(b))
	if err != nil {
		return "", nil, fmt.Errorf("start PostgreSQL from local binaries: %w", err)
	}
	user := ""
	if s.RunAs != "" {
		user = ", as user " + s.RunAs
	}
	fmt.Fprintf(a.stdout, "postgres: ready on 127.0.0.1:%d, data in %s%s (%v)\n", s.Port, s.Dir, user, since(start))
	stop := func() {
		// Not ctx: it may be cancelled already (Ctrl-C).
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.Stop(sctx); err != nil {
			fmt.Fprintf(a.stderr, "warning: stop the local PostgreSQL: %v\n", err)
			return
		}
		fmt.Fprintf(a.stdout, "postgres: local server stopped, %s removed\n", s.Dir)
	}
	return s.URL, stop, nil
}

// startContainer starts a PostgreSQL container.
func (a *app) startContainer(ctx context.Context, f *demoFlags) (string, func(), error) {
	image := f.image
	if image == "" {
		image = a.getenv(envImage)
	}
	if image == "" {
		image = defaultImage
	}
	fmt.Fprintf(a.stdout, "postgres: backend: container, image %s (testcontainers-go)\n", image)
	logger := tclog.NewNoopLogger()
	if f.verbose {
		logger = log.New(a.stderr, "testcontainers: ", log.LstdFlags)
	}
	// The Docker provider logs through the package default, not the
	// logger of the request.
	tclog.SetDefault(logger)
	start := time.Now()
	ctr, err := tcpostgres.Run(ctx, image,
		testcontainers.WithLogger(logger),
		tcpostgres.WithDatabase("offsetstore"),
		tcpostgres.WithUsername("offsetstore"),
		tcpostgres.WithPassword("offsetstore"),
		tcpostgres.BasicWaitStrategies(),
	)
	stop := func() {
		if ctr == nil {
			return
		}
		// Not ctx: it may be cancelled already (Ctrl-C).
		tctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		id := shortID(ctr.GetContainerID())
		if err := testcontainers.TerminateContainer(ctr, testcontainers.StopContext(tctx)); err != nil {
			fmt.Fprintf(a.stderr, "warning: terminate container %s: %v\n", id, err)
			return
		}
		fmt.Fprintf(a.stdout, "postgres: container %s terminated\n", id)
	}
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("start PostgreSQL in a container (image %s): %w\n"+
			"the container backend needs a Docker engine (set $%s to a local image if no registry is reachable); "+
			"or use --backend local with PostgreSQL's binaries installed, or --database-url", image, err, envImage)
	}
	url, err := ctr.ConnectionString(ctx, "sslmode=disable")
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("container connection string: %w", err)
	}
	fmt.Fprintf(a.stdout, "postgres: container %s ready (%v)\n", shortID(ctr.GetContainerID()), since(start))
	return url, stop, nil
}

func shortID(id string) string { return id[:min(12, len(id))] }

// redacted is u without its password, for printing.
func redacted(u string) string {
	pu, err := url.Parse(u)
	if err != nil || pu.Scheme == "" {
		return "(a keyword/value connection string)"
	}
	return pu.Redacted()
}

var errBackend = errors.New("want auto, container or local")
