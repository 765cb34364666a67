//go:build unix

package verify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// Crash kills the server the way a power cut or the OOM killer would:
// the postmaster is stopped (SIGSTOP, so it cannot react), every process
// it started gets SIGKILL, then the postmaster. No shutdown checkpoint
// runs and WAL still in shared memory is lost. Restart starts the server
// again on the same data directory, which runs crash recovery. For tests
// of what survives a crash.
func (l *Local) Crash() error {
	if l.cmd == nil || l.cmd.Process == nil {
		return errors.New("crash local PostgreSQL: it is not running")
	}
	pid := l.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("crash local PostgreSQL: stop postmaster %d: %w", pid, err)
	}
	for _, child := range childProcesses(pid) {
		_ = syscall.Kill(child, syscall.SIGKILL)
	}
	if err := l.cmd.Process.Signal(os.Kill); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("crash local PostgreSQL: kill postmaster %d: %w", pid, err)
	}
	select {
	case <-l.exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("crash local PostgreSQL: postmaster %d still running 10s after SIGKILL", pid)
	}
}

// Restart starts the server again after Crash (or after it exited), on the
// same data directory and settings and on a fresh port: DSN gives the new
// one. It returns once the server, crash recovery done, accepts
// connections.
func (l *Local) Restart(ctx context.Context) error {
	select {
	case <-l.exited:
	default:
		return errors.New("restart local PostgreSQL: it is still running")
	}
	return l.boot(ctx)
}
