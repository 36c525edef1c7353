//go:build unix

package localpg

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// killAll ends the postmaster p and every process it started at once, as
// a crash of the machine (or a container's SIGKILL) does. PostgreSQL's
// children each lead a process group of their own (they call setsid), so
// signalling p's group would reach the postmaster alone, and its children
// would go on until they notice it died. So p is stopped first (SIGSTOP:
// it forks nothing more), its children are found (in /proc, where there is
// one) and killed, and then p. Without /proc, the children end by
// themselves once they notice the postmaster is gone.
func killAll(p *os.Process) error {
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	for _, pid := range children(p.Pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return p.Signal(syscall.SIGKILL)
}

// children returns the processes whose parent is pid, read from /proc.
func children(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	want := []byte(strconv.Itoa(pid))
	var out []int
	for _, path := range stats {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses:
		// the fields follow the last ")".
		i := bytes.LastIndexByte(data, ')')
		if i < 0 {
			continue
		}
		fields := bytes.Fields(data[i+1:])
		if len(fields) < 2 || !bytes.Equal(fields[1], want) {
			continue
		}
		if child, err := strconv.Atoi(filepath.Base(filepath.Dir(path))); err == nil {
			out = append(out, child)
		}
	}
	return out
}
