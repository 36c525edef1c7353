package testdb

import (
	"context"
	"fmt"
	"strings"

	"github.com/outboxkit/offsetstore/internal/localpg"
)

// localReplicas makes the nodes of a pair from the local binaries: the
// primary a localpg server, each standby a localpg standby of the primary
// of the moment.
type localReplicas struct {
	settings []string
}

func (b *localReplicas) options() []localpg.Option {
	var opts []localpg.Option
	for _, kv := range b.settings {
		name, value, _ := strings.Cut(kv, "=")
		opts = append(opts, localpg.WithSetting(name, value))
	}
	return opts
}

func (b *localReplicas) startPrimary(ctx context.Context, _ string) (replicaNode, error) {
	s, err := localpg.Start(ctx, b.options()...)
	if err != nil {
		return nil, fmt.Errorf("start a primary from local binaries: %w", err)
	}
	return &localNode{s: s}, nil
}

func (b *localReplicas) startStandby(ctx context.Context, _ string, primary replicaNode, _ string) (replicaNode, error) {
	p, ok := primary.(*localNode)
	if !ok {
		return nil, fmt.Errorf("a local standby of %T", primary)
	}
	// The settings are the primary's, which StartStandby takes over.
	s, err := localpg.StartStandby(ctx, p.s)
	if err != nil {
		return nil, fmt.Errorf("start a standby from local binaries: %w", err)
	}
	return &localNode{s: s}, nil
}

func (b *localReplicas) close(context.Context) {}

// localNode is a node of the local backend.
type localNode struct{ s *localpg.Server }

func (n *localNode) url() string                      { return n.s.URL }
func (n *localNode) addr() string                     { return hostPort("127.0.0.1", n.s.Port) }
func (n *localNode) kill(context.Context) error       { return n.s.Kill() }
func (n *localNode) stop(ctx context.Context) error   { return n.s.Halt(ctx) }
func (n *localNode) start(ctx context.Context) error  { return n.s.Resume(ctx) }
func (n *localNode) remove(ctx context.Context) error { return n.s.Stop(ctx) }
func (n *localNode) String() string                   { return "local " + n.s.String() }
