//go:build !unix

package verify

import "syscall"

// sysProcAttr has nothing to set where there are no uids: serverAccount only
// returns an account for root.
func sysProcAttr(*account) *syscall.SysProcAttr { return nil }
