package verify_test

import (
	"context"
	"testing"

	"github.com/phasekit/phasekit/verify"
	"github.com/phasekit/phasekit/verify/pgtest"
	"github.com/phasekit/phasekit/verify/sandboxtest"
)

// Every sandbox passes the same conformance suite. Each is opened through
// OpenSandbox, as the verify command opens it.

func TestLocalSandboxConformance(t *testing.T) {
	sandboxtest.Run(t, verify.ProviderLocal, func(t *testing.T) verify.Sandbox {
		return openSandbox(t, verify.SandboxOptions{Provider: verify.ProviderLocal})
	})
}

func TestDSNSandboxConformance(t *testing.T) {
	cluster := pgtest.Cluster(t)
	// The dsn sandbox shares a server: Close drops what it created, and
	// nothing else.
	const keep = "conform_dsn_keep"
	if err := cluster.CreateDatabase(t.Context(), keep, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.DropDatabase(context.Background(), keep) })
	sandboxtest.Run(t, verify.ProviderDSN, func(t *testing.T) verify.Sandbox {
		return openSandbox(t, verify.SandboxOptions{Provider: verify.ProviderDSN, DSN: cluster.DSN("postgres")})
	})
	conn := pgtest.Conn(t, cluster.DSN(keep))
	if err := conn.Ping(t.Context()); err != nil {
		t.Errorf("the dsn sandbox's Close dropped %s, which it did not create: %v", keep, err)
	}
}

func TestDockerSandboxConformance(t *testing.T) {
	image := pgtest.DockerImage(t)
	sandboxtest.Run(t, verify.ProviderDocker, func(t *testing.T) verify.Sandbox {
		return openSandbox(t, verify.SandboxOptions{Provider: verify.ProviderDocker, Image: image})
	})
}

// openSandbox opens a sandbox and closes it again when the test ends, in
// case the suite stops before its own Close.
func openSandbox(t *testing.T, opts verify.SandboxOptions) verify.Sandbox {
	t.Helper()
	s, err := verify.OpenSandbox(t.Context(), opts)
	if err != nil {
		t.Fatalf("OpenSandbox(%s): %v", opts.Provider, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
