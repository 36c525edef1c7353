package main

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"

	"github.com/outboxkit/offsetstore/internal/testdb"
)

// The demo starts the image the tests use.
const (
	envImage     = testdb.EnvImage
	defaultImage = testdb.DefaultImage
)

// startPostgres starts a PostgreSQL container and returns its URL and a
// function that terminates it.
func (a *app) startPostgres(ctx context.Context, f *demoFlags) (string, func(), error) {
	image := f.image
	if image == "" {
		image = a.getenv(envImage)
	}
	if image == "" {
		image = defaultImage
	}
	fmt.Fprintf(a.stdout, "postgres: starting %s in a container (testcontainers-go)\n", image)
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
			"the demo needs a Docker engine (set $%s to a local image if no registry is reachable), or --database-url", image, err, envImage)
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
