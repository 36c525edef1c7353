//go:build !unix

package localpg

import "os"

// killAll kills p; the servers run on Unix systems only (see supported).
func killAll(p *os.Process) error { return p.Kill() }
