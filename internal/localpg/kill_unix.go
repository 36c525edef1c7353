//go:build unix

package localpg

import (
	"os"
	"syscall"
)

// killGroup sends SIGKILL to p's process group: postgres runs in a group
// of its own (sysProcAttr), which its children join.
func killGroup(p *os.Process) error {
	if err := syscall.Kill(-p.Pid, syscall.SIGKILL); err != nil {
		if err == syscall.ESRCH {
			return os.ErrProcessDone
		}
		return err
	}
	return nil
}
