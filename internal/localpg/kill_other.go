//go:build !unix

package localpg

import "os"

// killGroup kills p; the servers run on Unix systems only (see supported).
func killGroup(p *os.Process) error { return p.Kill() }
