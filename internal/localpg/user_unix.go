//go:build unix

package localpg

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// credential is the system user the server runs as; nil: this process's.
type credential struct {
	uid, gid uint32
}

// runAsUsers are the users tried, in order, when this process is root.
var runAsUsers = []string{"postgres", "nobody"}

// unprivileged returns the user to run initdb and postgres as: none when
// this process is not root, else the first of runAsUsers that exists.
func unprivileged() (*credential, string, error) {
	if os.Geteuid() != 0 {
		return nil, "", nil
	}
	for _, name := range runAsUsers {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		return &credential{uid: uint32(uid), gid: uint32(gid)}, name, nil
	}
	return nil, "", fmt.Errorf("localpg: running as root, and initdb refuses root: no user %v to run PostgreSQL as; create one, or run as an ordinary user", runAsUsers)
}

// chown gives path to the credential's user; nothing without one.
func (c *credential) chown(path string) error {
	if c == nil {
		return nil
	}
	if err := os.Chown(path, int(c.uid), int(c.gid)); err != nil {
		return fmt.Errorf("localpg: give %s to uid %d: %w", path, c.uid, err)
	}
	return nil
}

func supported() error { return nil }

// sysProcAttr runs a child as c's user (when set), in a process group of
// its own (a Ctrl-C at the terminal is this process's to handle), and, on
// Linux, with a signal when this process dies (see pdeathsig).
func sysProcAttr(c *credential) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	if c != nil {
		a.Credential = &syscall.Credential{Uid: c.uid, Gid: c.gid} // no supplementary groups
	}
	pdeathsig(a)
	return a
}
