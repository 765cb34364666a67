package verify

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/moby/moby/client"

	"github.com/phasekit/phasekit/internal/dbconn"
	"github.com/phasekit/phasekit/internal/testkit"
)

// requireDocker skips the test when Docker or image is unusable; with
// CI=true it fails instead, since CI builds the image (make image) first.
func requireDocker(t *testing.T, image string) {
	t.Helper()
	testkit.RequireDocker(t, dockerUnusable(t.Context(), image))
}

func TestDockerSandbox(t *testing.T) {
	image := DefaultImage()
	requireDocker(t, image)
	ctx := t.Context()
	var log syncBuffer
	start := time.Now()
	d, err := StartDocker(ctx, DockerOptions{Image: image, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: ready %v after StartDocker was called", d.Describe(), time.Since(start).Round(time.Millisecond))
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = d.Close()
		}
	})
	var s Sandbox = d
	id := d.ContainerID()

	if got := s.Provider(); got != ProviderDocker {
		t.Errorf("Provider() = %q, want %q", got, ProviderDocker)
	}
	if desc := s.Describe(); !strings.Contains(desc, image) || !strings.Contains(desc, "PostgreSQL 1") || !strings.Contains(desc, id[:12]) {
		t.Errorf("Describe() = %q, want the image, the server version and the container", desc)
	}
	u, err := url.Parse(s.DSN("somedb"))
	if err != nil {
		t.Fatal(err)
	}
	if u.Hostname() != "127.0.0.1" || u.Port() != strconv.Itoa(d.Port()) || u.Path != "/somedb" {
		t.Errorf("DSN = %s, want 127.0.0.1:%d/somedb", dbconn.Redact(u.String()), d.Port())
	}

	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	for _, setting := range []string{"fsync", "synchronous_commit", "full_page_writes"} {
		var got string
		if err := conn.QueryRow(ctx, "select current_setting($1)", setting).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != "off" {
			t.Errorf("%s = %s, want off", setting, got)
		}
	}
	conn.Close(ctx)

	if err := s.CreateDatabase(ctx, "tmpl", ""); err != nil {
		t.Fatal(err)
	}
	tmpl, err := pgx.Connect(ctx, s.DSN("tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmpl.Exec(ctx, "create table t (id int primary key); insert into t select generate_series(1, 3)"); err != nil {
		t.Fatal(err)
	}
	tmpl.Close(ctx)
	if err := s.CreateDatabase(ctx, "copy", "tmpl"); err != nil {
		t.Fatal(err)
	}
	cp, err := pgx.Connect(ctx, s.DSN("copy"))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := cp.QueryRow(ctx, "select count(*) from t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("copy of tmpl has %d rows, want 3", n)
	}
	// The open session must not stop the drop (WITH (FORCE)), nor a second drop fail.
	if err := s.DropDatabase(ctx, "copy"); err != nil {
		t.Fatal(err)
	}
	cp.Close(ctx)
	if err := s.DropDatabase(ctx, "copy"); err != nil {
		t.Errorf("dropping a dropped database: %v", err)
	}
	if err := s.CreateDatabase(ctx, "copy2", "no_such_template"); err == nil || !strings.Contains(err.Error(), "no_such_template") {
		t.Errorf("CreateDatabase from a missing template: err = %v, want one naming the template", err)
	}

	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	closed = true
	assertContainerGone(t, id)
	assertNoStrayContainers(t)
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if conn, err := pgx.Connect(ctx, s.DSN("postgres")); err == nil {
		conn.Close(ctx)
		t.Error("server still accepts connections after Close")
	}
	if !strings.Contains(log.String(), "database system is ready to accept connections") {
		t.Errorf("Log did not receive the server's output; got:\n%s", log.String())
	}
}

func TestDockerStartMissingImage(t *testing.T) {
	const image = "phasekit/no-such-image:never"
	why := dockerUnusable(t.Context(), image)
	if !strings.HasPrefix(why, "image ") {
		requireDocker(t, image) // the daemon itself is the problem: skip or fail
		t.Fatalf("dockerUnusable(%s) = %q, want a reason naming the missing image", image, why)
	}
	if want := "`phasekit image build --tag " + image + "`"; !strings.Contains(why, want) {
		t.Errorf("dockerUnusable = %q, want it to name %s", why, want)
	}
	_, err := StartDocker(t.Context(), DockerOptions{Image: image})
	if err == nil {
		t.Fatal("StartDocker with an image that cannot be had succeeded")
	}
	for _, want := range []string{"not present locally and cannot be pulled", "phasekit image build --tag " + image} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	assertNoStrayContainers(t)
}

func TestDockerBuildHint(t *testing.T) {
	for image, want := range map[string]string{
		"postgres:16-alpine":         "--tag " + LocalImage + "` makes a local one; use it with PHASEKIT_IMAGE=" + LocalImage,
		"docker.io/library/postgres": "--tag " + LocalImage,
		LocalImage:                   "--tag " + LocalImage + "` makes one",
		"example.com/pg:15":          "--tag example.com/pg:15` makes one",
	} {
		if got := buildHint(image); !strings.Contains(got, want) {
			t.Errorf("buildHint(%s) = %q, want it to contain %q", image, got, want)
		}
	}
}

// helperEnv makes TestDockerHelperProcess act out a scenario in a child
// process: what happens when a test fails or the process is signalled can
// only be seen from outside.
const helperEnv = "PHASEKIT_DOCKER_HELPER"

func TestDockerHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("helper process for the Docker cleanup tests")
	}
	ctx := context.Background()
	switch mode {
	case "fail":
		d, err := StartDocker(ctx, DockerOptions{})
		if err != nil {
			t.Fatalf("StartDocker: %v", err)
		}
		t.Cleanup(func() { fmt.Printf("closed: %v\n", d.Close()) })
		fmt.Printf("container=%s\n", d.ContainerID())
		t.Fatal("deliberate failure after StartDocker")
	case "signal":
		// Drop pgtest.Main's handler: phasekit's CLI has none of its own.
		signal.Reset(os.Interrupt, syscall.SIGTERM)
		d, err := StartDocker(ctx, DockerOptions{})
		if err != nil {
			t.Fatalf("StartDocker: %v", err)
		}
		fmt.Printf("container=%s\n", d.ContainerID())
		time.Sleep(2 * time.Minute)
		t.Error("no signal came")
	case "unusable":
		start := time.Now()
		why := dockerUnusable(ctx, DefaultImage())
		fmt.Printf("unusable=%s\nelapsed_ms=%d\n", why, time.Since(start).Milliseconds())
	default:
		t.Fatalf("unknown %s=%q", helperEnv, mode)
	}
}

func helperCommand(mode string, prefix ...string) *exec.Cmd {
	args := append(prefix, os.Args[0], "-test.run=^TestDockerHelperProcess$", "-test.v", "-test.count=1", "-test.timeout=3m")
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	return cmd
}

// A test that fails after StartDocker still removes the container through
// its t.Cleanup.
func TestDockerCloseAfterFailedTest(t *testing.T) {
	requireDocker(t, DefaultImage())
	out, err := helperCommand("fail").CombinedOutput()
	id := containerIDIn(string(out))
	if id != "" {
		t.Cleanup(func() { removeContainer(id) })
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(string(out), "deliberate failure") {
		t.Fatalf("helper did not fail as planned (%v):\n%s", err, out)
	}
	if id == "" {
		t.Fatalf("helper printed no container ID:\n%s", out)
	}
	if !strings.Contains(string(out), "closed: <nil>") {
		t.Errorf("Close in t.Cleanup did not report success:\n%s", out)
	}
	assertContainerGone(t, id)
}

// SIGTERM (or SIGINT) to a process with a sandbox container removes the
// container, then the process dies of the signal.
func TestDockerRemovedOnSignal(t *testing.T) {
	requireDocker(t, DefaultImage())
	cmd := helperCommand("signal")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var id string
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if id != "" {
			removeContainer(id)
		}
	})
	ids := make(chan string, 1)
	var seen syncBuffer
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			fmt.Fprintln(&seen, sc.Text())
			if v, ok := strings.CutPrefix(sc.Text(), "container="); ok {
				ids <- v
			}
		}
		close(ids)
	}()
	select {
	case id = <-ids:
	case <-time.After(90 * time.Second):
	}
	if id == "" {
		t.Fatalf("helper printed no container ID:\n%s\n%s", seen.String(), stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case <-waited:
	case <-time.After(60 * time.Second):
		t.Fatalf("helper still running 60s after SIGTERM:\n%s", stderr.String())
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("helper ended with %v, want death by SIGTERM after cleanup\n%s", cmd.ProcessState, stderr.String())
	}
	if !strings.Contains(stderr.String(), "removing docker sandbox containers") {
		t.Errorf("helper's stderr does not announce the removal:\n%s", stderr.String())
	}
	assertContainerGone(t, id)
}

// Without a daemon dockerUnusable answers at once with the reason. A private
// mount namespace with an empty /run hides this machine's daemon socket.
func TestDockerUnusableWithoutDaemon(t *testing.T) {
	unshare, err := exec.LookPath("unshare")
	if err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and unshare(1) to hide the Docker socket")
	}
	if _, err := os.Stat("/var/run/docker.sock"); err != nil {
		t.Skip("no /var/run/docker.sock to hide")
	}
	cmd := helperCommand("unusable", unshare, "--mount", "--propagation", "private", "--",
		"sh", "-c", `mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/run 2>/dev/null; exec "$@"`, "sh")
	home := t.TempDir() // no ~/.docker contexts, no ~/.testcontainers.properties
	var env []string
	for _, kv := range cmd.Env {
		k, _, _ := strings.Cut(kv, "=")
		if k == "DOCKER_HOST" || k == "DOCKER_CONTEXT" || k == "XDG_RUNTIME_DIR" || k == "HOME" || strings.HasPrefix(k, "TESTCONTAINERS_") {
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = append(env, "HOME="+home)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	var why string
	elapsed := -1
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "unusable="); ok {
			why = v
		}
		if v, ok := strings.CutPrefix(line, "elapsed_ms="); ok {
			elapsed, _ = strconv.Atoi(v)
		}
	}
	if !strings.HasPrefix(why, "daemon not reachable") {
		t.Errorf("dockerUnusable without a daemon = %q, want \"daemon not reachable: ...\"\n%s", why, out)
	}
	if elapsed < 0 || elapsed > 2000 {
		t.Errorf("dockerUnusable took %d ms without a daemon, want under 2 s", elapsed)
	}
	t.Logf("without a daemon: %q in %d ms", why, elapsed)
}

func containerIDIn(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "container="); ok {
			return v
		}
	}
	return ""
}

func testDockerClient(t *testing.T) *client.Client {
	t.Helper()
	cli, err := dockerClient(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli.Client
}

// assertContainerGone checks with the daemon that container id does not exist.
func assertContainerGone(t *testing.T, id string) {
	t.Helper()
	_, err := testDockerClient(t).ContainerInspect(t.Context(), id, client.ContainerInspectOptions{})
	if !isNotFound(err) {
		t.Errorf("container %.12s still exists (inspect: %v)", id, err)
	}
}

// assertNoStrayContainers checks that every sandbox container of this
// process belongs to a sandbox not yet closed (another test's).
func assertNoStrayContainers(t *testing.T) {
	t.Helper()
	list, err := testDockerClient(t).ContainerList(t.Context(), client.ContainerListOptions{
		All:     true,
		Filters: make(client.Filters).Add("label", SandboxLabel+"=1", labelSession+"="+sessionID),
	})
	if err != nil {
		t.Fatal(err)
	}
	open := map[string]bool{}
	live.Lock()
	for d := range live.m {
		open[d.ContainerID()] = true
	}
	live.Unlock()
	for _, c := range list.Items {
		if !open[c.ID] {
			t.Errorf("sandbox container %.12s (%s) left behind", c.ID, c.State)
		}
	}
}

func removeContainer(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli, err := dockerClient(ctx)
	if err != nil {
		return
	}
	defer cli.Close()
	_, _ = cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
}

// syncBuffer is a bytes.Buffer for writers on other goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
