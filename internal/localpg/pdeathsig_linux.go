package localpg

import "syscall"

// pdeathsig makes the kernel send SIGQUIT (PostgreSQL's immediate
// shutdown) to the child when this process dies without stopping it: no
// server outlives a killed test binary or demo. Go sets it after the
// credentials change, which would otherwise clear it.
func pdeathsig(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGQUIT }
