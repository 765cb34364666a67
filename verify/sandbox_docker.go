package verify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/jackc/pgx/v5"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"

	"github.com/phasekit/phasekit/internal/dbconn"
)

// DockerOptions configures StartDocker.
type DockerOptions struct {
	// Image is the PostgreSQL image; "" means DefaultImage(). It must speak
	// the official postgres image's interface (POSTGRES_PASSWORD,
	// POSTGRES_USER, POSTGRES_DB, PGDATA, port 5432), as LocalImage does.
	Image string
	// Log receives the server's output; nil discards it. Startup errors
	// quote the end of it either way.
	Log io.Writer
	// StartTimeout bounds how long StartDocker waits for the server to
	// accept connections; zero means 60 seconds.
	StartTimeout time.Duration
}

// Labels on every sandbox container. SandboxLabel=1 finds them all
// (docker ps --filter label=phasekit.sandbox); the others tell which process
// owns one, so that a later StartDocker can remove those of dead processes.
const (
	SandboxLabel = "phasekit.sandbox"
	labelSession = "phasekit.session"
	labelPID     = "phasekit.pid"
	labelHost    = "phasekit.host"
)

// containerPGDATA is where the server keeps its data inside the container:
// a tmpfs, because the data is thrown away and the container's overlay
// filesystem is slow to write.
const containerPGDATA = "/var/lib/postgresql/data"

// containerPort is PostgreSQL's port inside the container.
const containerPort = "5432/tcp"

// DefaultImage is $PHASEKIT_IMAGE or postgres:16-alpine.
func DefaultImage() string {
	if v := os.Getenv("PHASEKIT_IMAGE"); v != "" {
		return v
	}
	return "postgres:16-alpine"
}

// Docker is a PostgreSQL server in a Docker container started with
// testcontainers-go, reachable on a port of 127.0.0.1 as the superuser
// postgres with a random password. Close removes the container.
type Docker struct {
	ctr      *testcontainers.DockerContainer
	image    string
	port     int
	password string
	version  string // server_version
	log      *tailWriter

	closeOnce sync.Once
	closeErr  error
}

// StartDocker starts a container from opts.Image and waits until the server
// in it accepts connections. An image that is not present locally is pulled;
// when that fails the error says how to build one (phasekit image build).
//
// testcontainers' reaper (Ryuk) is disabled unless
// TESTCONTAINERS_RYUK_DISABLED says otherwise, since its image usually cannot
// be had where a registry is unreachable. Instead: Close removes the
// container; SIGINT and SIGTERM remove every container of this process before
// the signal takes its course (see RemoveContainers); and StartDocker removes
// containers left behind by phasekit processes on this host that have died.
func StartDocker(ctx context.Context, opts DockerOptions) (_ *Docker, err error) {
	image := opts.Image
	if image == "" {
		image = DefaultImage()
	}
	setupTestcontainers()
	cli, err := dockerClient(ctx)
	if err != nil {
		return nil, fmt.Errorf("docker sandbox: docker daemon not reachable: %s", daemonError(err))
	}
	defer cli.Close()
	removeDeadOwnersContainers(ctx, cli)
	if err := ensureImage(ctx, cli, image, opts.Log); err != nil {
		return nil, err
	}

	password, err := randomHex(16)
	if err != nil {
		return nil, fmt.Errorf("docker sandbox: generate a password: %w", err)
	}
	d := &Docker{image: image, password: password, log: newTailWriter(16 << 10)}
	logTo := io.Writer(d.log)
	if opts.Log != nil {
		logTo = io.MultiWriter(d.log, lenientWriter{opts.Log})
	}
	defer func() {
		// A half-started container must not outlive the failed call.
		if err != nil {
			_ = d.Close()
		}
	}()

	signalOnce.Do(removeOnSignal)
	cmd := []string{"postgres"}
	for _, k := range []string{"fsync", "synchronous_commit", "full_page_writes", "max_connections"} {
		cmd = append(cmd, "-c", k+"="+defaultSettings[k])
	}
	hostname, _ := os.Hostname()
	ctr, err := testcontainers.Run(ctx, image,
		testcontainers.WithLogger(tclog.NewNoopLogger()),
		testcontainers.WithEnv(map[string]string{
			"POSTGRES_PASSWORD": password,
			"POSTGRES_USER":     superuser,
			"POSTGRES_DB":       "postgres",
			"PGDATA":            containerPGDATA,
		}),
		testcontainers.WithCmd(cmd...),
		testcontainers.WithExposedPorts(containerPort),
		testcontainers.WithTmpfs(map[string]string{containerPGDATA: "rw"}),
		testcontainers.WithLabels(map[string]string{
			SandboxLabel: "1",
			labelSession: sessionID,
			labelPID:     strconv.Itoa(os.Getpid()),
			labelHost:    hostname,
		}),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			// Only this machine may connect: the password is in every DSN we log.
			hc.PortBindings = network.PortMap{
				network.MustParsePort(containerPort): {{HostIP: netip.MustParseAddr("127.0.0.1")}},
			}
			hc.ShmSize = 256 << 20 // parallel query needs more than Docker's 64 MB default
		}),
		testcontainers.WithLogConsumers(logConsumer{logTo}),
	)
	if ctr != nil {
		d.ctr = ctr
		track(d)
	}
	if err != nil {
		return nil, fmt.Errorf("docker sandbox: start a container from %s: %w", image, err)
	}
	mapped, err := ctr.MappedPort(ctx, containerPort)
	if err != nil {
		return nil, fmt.Errorf("docker sandbox: host port of container %s: %w", d.shortID(), err)
	}
	d.port = int(mapped.Num())

	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	if err := d.waitReady(ctx, timeout); err != nil {
		return nil, err
	}
	return d, nil
}

// waitReady connects until the server answers a query. The official image
// runs a temporary server for its init scripts that listens on no TCP port,
// so a TCP connection that works is the real server.
func (d *Docker) waitReady(ctx context.Context, timeout time.Duration) error {
	cfg, err := pgx.ParseConfig(d.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("parse docker sandbox DSN: %w", err)
	}
	cfg.ConnectTimeout = 2 * time.Second
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for attempt := 1; ; attempt++ {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			err = conn.QueryRow(ctx, "SHOW server_version").Scan(&d.version)
			conn.Close(context.Background())
			if err == nil {
				return nil
			}
		}
		if attempt%10 == 0 {
			// A server that exits during startup would otherwise cost the whole timeout.
			if st, serr := d.ctr.State(ctx); serr == nil && !st.Running {
				return fmt.Errorf("docker sandbox: container %s from %s exited during startup (exit code %d):\n%s",
					d.shortID(), d.image, st.ExitCode, d.log.String())
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("docker sandbox: wait for PostgreSQL in container %s: %w", d.shortID(), ctx.Err())
		case <-deadline.C:
			return fmt.Errorf("docker sandbox: PostgreSQL in container %s from %s did not accept connections within %v: %s\n%s",
				d.shortID(), d.image, timeout, dbconn.Redact(err.Error()), d.log.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Provider implements Sandbox.
func (d *Docker) Provider() string { return ProviderDocker }

// Describe implements Sandbox.
func (d *Docker) Describe() string {
	return fmt.Sprintf("docker container %s from image %s (PostgreSQL %s) on 127.0.0.1:%d", d.shortID(), d.image, d.version, d.port)
}

// ContainerID returns the container's full ID.
func (d *Docker) ContainerID() string {
	if d.ctr == nil {
		return ""
	}
	return d.ctr.GetContainerID()
}

func (d *Docker) shortID() string {
	id := d.ContainerID()
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}

// Port returns the host port on 127.0.0.1 that leads to the server.
func (d *Docker) Port() int { return d.port }

// DSN implements Sandbox: a connection URL for database as the superuser.
func (d *Docker) DSN(database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(superuser, d.password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(d.port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// CreateDatabase implements Sandbox: it creates name as a copy of template
// ("" means the server's default, template1).
func (d *Docker) CreateDatabase(ctx context.Context, name, template string) error {
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		sql += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	if err := d.exec(ctx, sql); err != nil {
		if template != "" {
			return fmt.Errorf("create database %s from template %s: %w", name, template, err)
		}
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// DropDatabase implements Sandbox: it drops name, disconnecting its
// sessions; a database that does not exist is not an error.
func (d *Docker) DropDatabase(ctx context.Context, name string) error {
	if err := d.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

func (d *Docker) exec(ctx context.Context, sql string) error {
	conn, err := dbconn.Connect(ctx, d.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// Close implements Sandbox: it removes the container, killing the server
// without a shutdown checkpoint since its data goes with it. Calling it
// again returns the first call's result.
func (d *Docker) Close() error {
	d.closeOnce.Do(func() {
		untrack(d)
		if d.ctr == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := d.ctr.Terminate(ctx, testcontainers.StopTimeout(0))
		if err != nil && !d.gone(ctx) {
			d.closeErr = fmt.Errorf("remove docker sandbox container %s: %w", d.shortID(), err)
		}
	})
	return d.closeErr
}

// gone reports whether the container no longer exists (a signal handler or
// someone else removed it, which is what Close wanted).
func (d *Docker) gone(ctx context.Context) bool {
	cli, err := dockerClient(ctx)
	if err != nil {
		return false
	}
	defer cli.Close()
	_, err = cli.ContainerInspect(ctx, d.ContainerID(), client.ContainerInspectOptions{})
	return isNotFound(err)
}

// dockerUnusable returns "" when the Docker daemon answers and image is
// present locally, otherwise a short reason. It gives up after 1.5 seconds,
// since it only decides whether to prefer the docker sandbox.
func dockerUnusable(ctx context.Context, image string) string {
	setupTestcontainers()
	ctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	cli, err := dockerClient(ctx)
	if err == nil {
		defer cli.Close()
		_, err = cli.Ping(ctx, client.PingOptions{})
	}
	if err != nil {
		return "daemon not reachable: " + daemonError(err)
	}
	present, err := imagePresent(ctx, cli, image)
	if err != nil {
		return fmt.Sprintf("inspect image %s: %s", image, firstLine(err.Error()))
	}
	if !present {
		return fmt.Sprintf("image %s not present locally; %s", image, buildHint(image))
	}
	return ""
}

// buildHint says how to get image without a registry.
func buildHint(image string) string {
	if isOfficialPostgres(image) {
		return fmt.Sprintf("`phasekit image build --tag %s` makes a local one; use it with PHASEKIT_IMAGE=%s", LocalImage, LocalImage)
	}
	return fmt.Sprintf("`phasekit image build --tag %s` makes one", image)
}

// isOfficialPostgres tells Docker Hub's postgres images apart, which
// phasekit image build cannot stand in for under their own name.
func isOfficialPostgres(image string) bool {
	named, err := reference.ParseNormalizedNamed(image)
	return err == nil && reference.FamiliarName(named) == "postgres"
}

// ensureImage pulls image unless it is present, once and without retries:
// where no registry is reachable the answer will not change.
func ensureImage(ctx context.Context, cli *testcontainers.DockerClient, image string, log io.Writer) error {
	present, err := imagePresent(ctx, cli, image)
	if err != nil {
		return fmt.Errorf("docker sandbox: inspect image %s: %w", image, err)
	}
	if present {
		return nil
	}
	if log != nil {
		fmt.Fprintf(log, "docker sandbox: image %s not present locally, pulling it\n", image)
	}
	resp, err := cli.ImagePull(ctx, image, client.ImagePullOptions{})
	if err == nil {
		err = resp.Wait(ctx)
		resp.Close()
	}
	if err != nil {
		return fmt.Errorf("docker sandbox: image %s is not present locally and cannot be pulled (%s); %s",
			image, firstLine(err.Error()), buildHint(image))
	}
	return nil
}

func imagePresent(ctx context.Context, cli *testcontainers.DockerClient, image string) (bool, error) {
	_, err := cli.ImageInspect(ctx, image)
	if err == nil {
		return true, nil
	}
	if isNotFound(err) {
		return false, nil
	}
	return false, err
}

// dockerClient connects to the daemon testcontainers-go would use.
func dockerClient(ctx context.Context) (*testcontainers.DockerClient, error) {
	return testcontainers.NewDockerClientWithOpts(ctx)
}

var tcSetupOnce sync.Once

// setupTestcontainers disables the reaper unless the environment chose, and
// silences testcontainers' own chatter (its banner would land on stderr of
// every phasekit command). It runs before testcontainers reads its config.
func setupTestcontainers() {
	tcSetupOnce.Do(func() {
		if _, set := os.LookupEnv("TESTCONTAINERS_RYUK_DISABLED"); !set {
			_ = os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
		}
		tclog.SetDefault(tclog.NewNoopLogger())
	})
}

// sessionID labels the containers of this process.
var sessionID = func() string {
	s, err := randomHex(8)
	if err != nil {
		return strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	return s
}()

// live holds the containers of this process that Close has not removed.
var live = struct {
	sync.Mutex
	m map[*Docker]struct{}
}{m: map[*Docker]struct{}{}}

func track(d *Docker) {
	live.Lock()
	live.m[d] = struct{}{}
	live.Unlock()
}

func untrack(d *Docker) {
	live.Lock()
	delete(live.m, d)
	live.Unlock()
}

// RemoveContainers removes every sandbox container this process started and
// has not closed, including one still starting. StartDocker already calls it
// on SIGINT and SIGTERM; a program that exits by other means (os.Exit after
// its own signal handling, say) can call it first.
func RemoveContainers() error {
	live.Lock()
	ds := make([]*Docker, 0, len(live.m))
	for d := range live.m {
		ds = append(ds, d)
	}
	live.Unlock()
	var errs []error
	for _, d := range ds {
		errs = append(errs, d.Close())
	}
	// A container being created when this runs is not tracked yet; its label is.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if cli, err := dockerClient(ctx); err == nil {
		defer cli.Close()
		errs = append(errs, removeLabelled(ctx, cli, labelSession+"="+sessionID, func(map[string]string) bool { return true }))
	}
	return errors.Join(errs...)
}

var signalOnce sync.Once

// removeOnSignal removes this process's containers on SIGINT or SIGTERM,
// then delivers the signal again with our handler gone: the process dies of
// it as it would have, unless another handler (the program's own) wants it.
func removeOnSignal() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		fmt.Fprintf(os.Stderr, "phasekit: %v: removing docker sandbox containers\n", sig)
		if err := RemoveContainers(); err != nil {
			fmt.Fprintf(os.Stderr, "phasekit: %v\n", err)
		}
		signal.Stop(sigs)
		if p, err := os.FindProcess(os.Getpid()); err != nil || p.Signal(sig) != nil {
			os.Exit(1)
		}
	}()
}

// removeDeadOwnersContainers removes sandbox containers whose phasekit
// process on this host has died without removing them (a test binary killed
// by its timeout, say). Best effort, like removeStaleClusters.
func removeDeadOwnersContainers(ctx context.Context, cli *testcontainers.DockerClient) {
	hostname, err := os.Hostname()
	if err != nil {
		return
	}
	_ = removeLabelled(ctx, cli, SandboxLabel+"=1", func(labels map[string]string) bool {
		pid, err := strconv.Atoi(labels[labelPID])
		return err == nil && pid > 0 && labels[labelHost] == hostname &&
			labels[labelSession] != sessionID && !processAlive(pid)
	})
}

// removeLabelled force-removes the containers with label (name=value) that
// pick accepts.
func removeLabelled(ctx context.Context, cli *testcontainers.DockerClient, label string, pick func(labels map[string]string) bool) error {
	list, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", label)})
	if err != nil {
		return fmt.Errorf("list sandbox containers: %w", err)
	}
	var errs []error
	for _, c := range list.Items {
		if !pick(c.Labels) {
			continue
		}
		_, err := cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("remove sandbox container %.12s: %w", c.ID, err))
		}
	}
	return errors.Join(errs...)
}

// logConsumer copies the container's output to w.
type logConsumer struct{ w io.Writer }

func (c logConsumer) Accept(l testcontainers.Log) { _, _ = c.w.Write(l.Content) }

func isNotFound(err error) bool { return cerrdefs.IsNotFound(err) }

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// daemonError says why the daemon could not be reached in a line.
// testcontainers reports a machine without any Docker socket by the last
// place it looked.
func daemonError(err error) string {
	msg := firstLine(err.Error())
	if errors.Is(err, context.DeadlineExceeded) {
		return "no answer in time: " + msg
	}
	if strings.Contains(msg, "rootless Docker not found") || strings.Contains(msg, "socket not found") {
		return "no Docker socket found (DOCKER_HOST unset, no /var/run/docker.sock, no docker context or rootless socket)"
	}
	return msg
}

// firstLine keeps error texts that span many lines (joined errors of every
// Docker host tried) to a line fit for a notice.
func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
