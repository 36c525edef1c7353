//go:build !unix

package localpg

import (
	"errors"
	"syscall"
)

type credential struct{}

func unprivileged() (*credential, string, error) { return nil, "", nil }

func (*credential) chown(string) error { return nil }

func supported() error {
	return errors.New("localpg: a local PostgreSQL is started on Unix systems only; use Docker or an existing server")
}

func sysProcAttr(*credential) *syscall.SysProcAttr { return nil }
