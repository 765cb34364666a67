package verify

import (
	"context"
	"fmt"
	"io"

	"github.com/phasekit/phasekit/internal/dbconn"
)

// Sandbox is a PostgreSQL server phasekit may create and drop databases on:
// a container, a throwaway local cluster, or a scratch database on an
// existing server. Close removes everything the sandbox made.
//
// Every implementation passes the conformance suite in verify/sandboxtest,
// whose package comment says how to add one.
type Sandbox interface {
	// Provider names the kind: "docker", "local" or "dsn".
	Provider() string
	// Describe is one line for logs and reports (where, which version).
	Describe() string
	// DSN returns a connection URL for database on the sandbox's server.
	DSN(database string) string
	// CreateDatabase creates name as a copy of template ("" for the default).
	CreateDatabase(ctx context.Context, name, template string) error
	// DropDatabase drops name, disconnecting its sessions; a missing
	// database is not an error.
	DropDatabase(ctx context.Context, name string) error
	// Close removes the sandbox: stops the cluster, removes the container,
	// drops the databases it created. Safe to call twice.
	Close() error
}

// Providers.
const (
	ProviderDocker = "docker"
	ProviderLocal  = "local"
	ProviderDSN    = "dsn"
)

// SandboxOptions chooses and configures a sandbox.
type SandboxOptions struct {
	// Provider is docker, local or dsn; "" picks docker when the Docker
	// daemon answers and Image is present, local otherwise.
	Provider string
	// Image is the container image for docker ("" means DefaultImage()).
	Image string
	// DSN is the existing server for the dsn provider.
	DSN string
	// Log receives the server's output; nil discards it.
	Log io.Writer
	// Note receives one-line notices (which provider was picked and why).
	Note func(string)
}

// OpenSandbox starts (or connects to) the sandbox opts ask for.
func OpenSandbox(ctx context.Context, opts SandboxOptions) (Sandbox, error) {
	note := opts.Note
	if note == nil {
		note = func(string) {}
	}
	image := opts.Image
	if image == "" {
		image = DefaultImage()
	}
	switch opts.Provider {
	case "":
		if why := dockerUnusable(ctx, image); why != "" {
			note("sandbox: local PostgreSQL cluster (docker not used: " + why + ")")
			return startLocalSandbox(ctx, opts)
		}
		note("sandbox: docker container from image " + image)
		return StartDocker(ctx, DockerOptions{Image: image, Log: opts.Log})
	case ProviderLocal:
		return startLocalSandbox(ctx, opts)
	case ProviderDocker:
		return StartDocker(ctx, DockerOptions{Image: image, Log: opts.Log})
	case ProviderDSN:
		if opts.DSN == "" {
			return nil, fmt.Errorf("%w: provider dsn needs a server: give --sandbox-dsn", dbconn.ErrConnect)
		}
		return OpenDSNSandbox(ctx, opts.DSN)
	default:
		return nil, fmt.Errorf("unknown sandbox provider %q: want docker, local or dsn", opts.Provider)
	}
}

func startLocalSandbox(ctx context.Context, opts SandboxOptions) (Sandbox, error) {
	return StartLocal(ctx, LocalOptions{Log: opts.Log})
}

// DockerUnusable returns "" when the docker provider can start image here,
// otherwise why not (no daemon, no image): tests skip on it with the reason.
func DockerUnusable(ctx context.Context, image string) string { return dockerUnusable(ctx, image) }
