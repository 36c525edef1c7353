package testdb

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tcnetwork "github.com/testcontainers/testcontainers-go/network"
)

// containerReplicas makes the nodes of a pair as containers of one image
// on a Docker network of the pair's own.
type containerReplicas struct {
	image      string
	entrypoint []string // the image's
	settings   []string
	net        *testcontainers.DockerNetwork
}

// replicaPassword is the password of replicaUser in the containers.
const replicaPassword = "offsetstore"

// replicationHBA lets every node of the pair's network open replication
// connections: an init script, run on the primary's first start (after
// initdb, with PGDATA set).
const replicationHBA = `echo "host replication all samenet trust" >> "$PGDATA/pg_hba.conf"
`

// standbyScript runs as the standby container's command, as root (an
// image's entrypoint runs a command other than postgres as it is): on the
// first start it copies the primary's data with pg_basebackup -R into
// PGDATA and gives it to the user postgres, then it hands over to the
// image's entrypoint ($1) with the server's arguments, which finds the data
// and starts the server (as a standby, for standby.signal) without initdb.
// On a later start (StartStandby) the data is there already.
const standbyScript = `set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	mkdir -p "$PGDATA"
	pg_basebackup -h "$OFFSETSTORE_PRIMARY" -p 5432 -U "$POSTGRES_USER" -D "$PGDATA" -R -X stream -c fast
	chown -R postgres:postgres "$PGDATA"
	chmod 0700 "$PGDATA"
fi
exec "$@"
`

func newContainerReplicas(ctx context.Context, cfg replicatedConfig) (*containerReplicas, error) {
	b := &containerReplicas{image: os.Getenv(EnvImage), settings: cfg.settings()}
	if b.image == "" {
		b.image = DefaultImage
	}
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	defer cli.Close()
	img, err := cli.ImageInspect(ctx, b.image)
	if err != nil {
		return nil, fmt.Errorf("inspect image %s (pull or build it first): %w", b.image, err)
	}
	if img.Config == nil || len(img.Config.Entrypoint) == 0 {
		return nil, fmt.Errorf("image %s has no entrypoint: a standby needs one that starts postgres from existing data", b.image)
	}
	b.entrypoint = img.Config.Entrypoint
	if b.net, err = tcnetwork.New(ctx); err != nil {
		return nil, fmt.Errorf("create network: %w", err)
	}
	return b, nil
}

// serverArgs are the arguments of the server: postgres -c … for each
// setting, listening on every address of the container.
func (b *containerReplicas) serverArgs() []string {
	args := []string{"postgres"}
	for _, kv := range b.settings {
		args = append(args, "-c", kv)
	}
	return args
}

func (b *containerReplicas) startPrimary(ctx context.Context, slot string) (replicaNode, error) {
	return b.run(ctx, slot,
		testcontainers.WithCmd(b.serverArgs()...),
		testcontainers.WithFiles(testcontainers.ContainerFile{
			Reader:            strings.NewReader(replicationHBA),
			ContainerFilePath: "/docker-entrypoint-initdb.d/offsetstore-replication.sh",
			FileMode:          0o755,
		}),
	)
}

func (b *containerReplicas) startStandby(ctx context.Context, slot string, _ replicaNode, primarySlot string) (replicaNode, error) {
	cmd := append([]string{"sh", "-c", standbyScript, "standby"}, b.entrypoint...)
	return b.run(ctx, slot,
		testcontainers.WithCmd(append(cmd, b.serverArgs()...)...),
		testcontainers.WithEnv(map[string]string{"OFFSETSTORE_PRIMARY": primarySlot}),
	)
}

// run starts a node of the image in slot (its alias on the network), on a
// fixed port of 127.0.0.1 (so that a stop and start keep it), and waits
// until it accepts connections.
func (b *containerReplicas) run(ctx context.Context, slot string, opts ...testcontainers.ContainerCustomizer) (replicaNode, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	opts = append([]testcontainers.ContainerCustomizer{
		testcontainers.WithEnv(map[string]string{
			"POSTGRES_USER":     replicaUser,
			"POSTGRES_PASSWORD": replicaPassword,
			"POSTGRES_DB":       replicaDatabase,
		}),
		testcontainers.WithExposedPorts("5432/tcp"),
		tcnetwork.WithNetwork([]string{slot}, b.net),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.PortBindings = network.PortMap{
				network.MustParsePort("5432/tcp"): {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: strconv.Itoa(port)}},
			}
			// A dead node's alias no longer resolves; Docker's resolver then
			// asks the upstream servers, which may never answer here (see
			// Cluster.runNode).
			hc.DNSOptions = []string{"timeout:1", "attempts:1"}
		}),
	}, opts...)
	ctr, err := testcontainers.Run(ctx, b.image, opts...)
	n := &containerNode{ctr: ctr, port: port, slot: slot}
	if err != nil {
		if ctr != nil {
			_ = n.remove(context.WithoutCancel(ctx))
		}
		return nil, fmt.Errorf("start node %s (image %s): %w", slot, b.image, err)
	}
	if err := n.waitReady(ctx); err != nil {
		_ = n.remove(context.WithoutCancel(ctx))
		return nil, err
	}
	return n, nil
}

func (b *containerReplicas) close(ctx context.Context) {
	if b.net != nil {
		_ = b.net.Remove(ctx)
	}
}

// containerNode is a node of the container backend.
type containerNode struct {
	ctr  *testcontainers.DockerContainer
	port int
	slot string
}

func (n *containerNode) url() string {
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", replicaUser, replicaPassword, n.addr(), replicaDatabase)
}

func (n *containerNode) addr() string { return hostPort("127.0.0.1", n.port) }

func (n *containerNode) String() string {
	return fmt.Sprintf("container %.12s (%s) on %s", n.ctr.GetContainerID(), n.slot, n.addr())
}

// waitReady waits until the node accepts connections, or its container
// exits (its log then says why).
func (n *containerNode) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	exited := make(chan struct{})
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			st, err := n.ctr.State(ctx)
			if err == nil && !st.Running {
				close(exited)
				return
			}
		}
	}()
	if err := waitAccepting(ctx, n.url(), exited); err != nil {
		return fmt.Errorf("node %s: %w\n%s", n.slot, err, n.logTail(ctx))
	}
	return nil
}

// logTail returns the end of the container's log.
func (n *containerNode) logTail(ctx context.Context) string {
	rc, err := n.ctr.Logs(context.WithoutCancel(ctx))
	if err != nil {
		return ""
	}
	defer rc.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		k, err := rc.Read(buf)
		b.Write(buf[:k])
		if err != nil {
			break
		}
	}
	return tail(b.String(), 20)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (n *containerNode) kill(ctx context.Context) error {
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return fmt.Errorf("docker client: %w", err)
	}
	defer cli.Close()
	if _, err := cli.ContainerKill(ctx, n.ctr.GetContainerID(), client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		return fmt.Errorf("kill container: %w", err)
	}
	return nil
}

func (n *containerNode) stop(ctx context.Context) error {
	timeout := 30 * time.Second
	return n.ctr.Stop(ctx, &timeout)
}

func (n *containerNode) start(ctx context.Context) error {
	if err := n.ctr.Start(ctx); err != nil {
		return err
	}
	return n.waitReady(ctx)
}

func (n *containerNode) remove(ctx context.Context) error {
	return testcontainers.TerminateContainer(n.ctr, testcontainers.StopContext(ctx))
}
