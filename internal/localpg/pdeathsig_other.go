//go:build unix && !linux

package localpg

import "syscall"

// pdeathsig does nothing where the kernel has no parent-death signal: a
// server whose parent is killed outright keeps running until stopped.
func pdeathsig(*syscall.SysProcAttr) {}
