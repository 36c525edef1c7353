package testdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"

	"github.com/outboxkit/offsetstore/internal/localpg"
)

// dockerTimeout bounds the question whether a Docker engine answers.
const dockerTimeout = 10 * time.Second

// DockerEngine returns nil when a Docker engine answers: the engine of
// $DOCKER_HOST when that is set, and no other (so that DOCKER_HOST
// pointing nowhere hides Docker, where testcontainers-go would fall back
// to the default socket), else the one testcontainers-go finds. The demo
// asks it too.
func DockerEngine(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, dockerTimeout)
	defer cancel()
	if host := os.Getenv("DOCKER_HOST"); host != "" {
		cli, err := client.New(client.FromEnv)
		if err != nil {
			return fmt.Errorf("DOCKER_HOST=%s: %w", host, err)
		}
		defer cli.Close()
		if _, err := cli.Ping(ctx, client.PingOptions{}); err != nil {
			return fmt.Errorf("DOCKER_HOST=%s: %w", host, err)
		}
		return nil
	}
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return err
	}
	return cli.Close()
}

// chooseBackend picks the backend by EnvBackend: auto (or unset) takes a
// container when a Docker engine answers, else the local binaries, and
// says why in why.
func chooseBackend(ctx context.Context) (b Backend, why string, err error) {
	switch mode := os.Getenv(EnvBackend); mode {
	case "container", "docker":
		return BackendContainer, "", nil
	case "local":
		return BackendLocal, "$" + EnvBackend + "=local", nil
	case "", "auto":
		dockerErr := DockerEngine(ctx)
		if dockerErr == nil {
			return BackendContainer, "", nil
		}
		if _, err := localpg.Find(ctx); err != nil {
			return "", "", fmt.Errorf("no Docker engine answered (%v), and %w", dockerErr, err)
		}
		return BackendLocal, fmt.Sprintf("no Docker engine answered: %v", dockerErr), nil
	default:
		return "", "", errors.New("$" + EnvBackend + "=" + mode + ": want auto, container or local")
	}
}
