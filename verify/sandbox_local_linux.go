package verify

import "syscall"

// sysProcAttr runs a server process as acct (nil: the current user) in its own
// process group, so that a terminal's Ctrl-C reaches us and not the server,
// which we then stop in order. Should we die without stopping it, the kernel
// sends it SIGINT (fast shutdown) rather than leaving it running.
func sysProcAttr(acct *account) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGINT}
	if acct != nil {
		attr.Credential = &syscall.Credential{Uid: uint32(acct.uid), Gid: uint32(acct.gid)}
	}
	return attr
}
