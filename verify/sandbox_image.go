package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/moby/moby/client"
)

// LocalImage is the tag phasekit image build gives the image it builds:
// PostgreSQL 15 on Debian bookworm, made from Debian packages alone, for
// machines that reach a Debian mirror but no container registry.
const LocalImage = "phasekit/postgres:15-bookworm"

// ErrBuildInput marks BuildImage errors caused by its options (a malformed
// tag or mirror); errors.Is matches them.
var ErrBuildInput = errors.New("bad image build input")

// BuildImageOptions configures BuildImage.
type BuildImageOptions struct {
	// Tag names the image; "" means LocalImage.
	Tag string
	// Mirror is the Debian mirror; "" means the first one in the machine's
	// apt sources, or http://deb.debian.org/debian.
	Mirror string
	// Force rebuilds the image even when Tag is present.
	Force bool
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// defaultMirror is used when neither the options nor apt's sources name one.
const defaultMirror = "http://deb.debian.org/debian"

// BuildImage builds a PostgreSQL 15 image without a registry: debootstrap
// installs Debian bookworm (minbase) with postgresql-15 into a temporary
// directory, an entrypoint with the official postgres image's interface is
// added, and the tree is imported into Docker as Tag. A Tag already present
// is kept unless Force; built says whether an image was made. It must run as
// root (debootstrap chroots) and takes about two minutes.
func BuildImage(ctx context.Context, opts BuildImageOptions) (built bool, err error) {
	tag := opts.Tag
	if tag == "" {
		tag = LocalImage
	}
	if err := checkTag(tag); err != nil {
		return false, fmt.Errorf("%w: image tag %q: %v", ErrBuildInput, tag, err)
	}
	mirror := opts.Mirror
	if mirror == "" {
		mirror = aptMirror("/")
	}
	if u, err := url.Parse(mirror); err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file") || (u.Host == "" && u.Scheme != "file") {
		return false, fmt.Errorf("%w: Debian mirror %q: want a URL like %s", ErrBuildInput, mirror, defaultMirror)
	}
	logf := func(format string, args ...any) {
		if opts.Log != nil {
			fmt.Fprintf(opts.Log, "image: "+format+"\n", args...)
		}
	}

	setupTestcontainers()
	cli, err := dockerClient(ctx)
	if err == nil {
		defer cli.Close()
		_, err = cli.Ping(ctx, client.PingOptions{})
	}
	if err != nil {
		return false, fmt.Errorf("build image %s: docker daemon not reachable: %s", tag, daemonError(err))
	}
	var oldID string // the image Force replaces
	if img, err := cli.ImageInspect(ctx, tag); err == nil {
		if !opts.Force {
			logf("%s present (%s, created %s): nothing to do; --force rebuilds it", tag, megabytes(img.Size), img.Created)
			return false, nil
		}
		oldID = img.ID
	} else if !isNotFound(err) {
		return false, fmt.Errorf("build image %s: inspect: %w", tag, err)
	}
	if os.Geteuid() != 0 {
		return false, fmt.Errorf("build image %s: debootstrap needs root (it chroots and creates device files): run phasekit image build as root", tag)
	}
	debootstrap, err := findDebootstrap(ctx, logf)
	if err != nil {
		return false, fmt.Errorf("build image %s: %w", tag, err)
	}

	start := time.Now()
	dir, err := os.MkdirTemp("", "phasekit-rootfs-")
	if err != nil {
		return false, fmt.Errorf("build image %s: %w", tag, err)
	}
	defer func() {
		if rerr := removeRootfs(dir); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()
	root := filepath.Join(dir, "rootfs")

	logf("debootstrap bookworm (minbase, postgresql-15) from %s into %s; this takes about two minutes", mirror, root)
	tail := newTailWriter(2 << 10) // the end of its output, for the error
	progress := &debootstrapProgress{log: opts.Log}
	cmd := exec.CommandContext(ctx, debootstrap, "--variant=minbase", "--include=postgresql-15", "bookworm", root, mirror)
	cmd.Stdout = io.MultiWriter(tail, progress)
	cmd.Stderr = cmd.Stdout
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C")
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return false, fmt.Errorf("build image %s: debootstrap from %s: %w\n%s", tag, mirror, err, tail.String())
	}
	progress.flush()
	logf("debootstrap done in %v", time.Since(start).Round(time.Second))

	if err := finishRootfs(root); err != nil {
		return false, fmt.Errorf("build image %s: %w", tag, err)
	}
	logf("importing into docker as %s", tag)
	if err := importRootfs(ctx, cli, root, tag); err != nil {
		return false, fmt.Errorf("build image %s: %w", tag, err)
	}
	img, err := cli.ImageInspect(ctx, tag)
	if err != nil {
		return false, fmt.Errorf("build image %s: inspect the imported image: %w", tag, err)
	}
	logf("built %s (%s) in %v", tag, megabytes(img.Size), time.Since(start).Round(time.Second))
	if oldID != "" && oldID != img.ID {
		// The tag has moved; the old image would linger untagged. One that a
		// container still uses stays, as the daemon refuses without force.
		if _, err := cli.ImageRemove(ctx, oldID, client.ImageRemoveOptions{}); err == nil {
			logf("removed the image %s replaced (%.19s)", tag, oldID)
		}
	}
	return true, nil
}

// checkTag accepts what docker import can name an image: a repository in
// lower case, optionally with a tag, without a digest.
func checkTag(tag string) error {
	named, err := reference.ParseNormalizedNamed(tag)
	if err != nil {
		return err
	}
	// The parser takes an upper-case first component for a registry host;
	// the daemon refuses it.
	if n := named.Name(); n != strings.ToLower(n) {
		return errors.New("repository name must be lowercase")
	}
	if _, ok := named.(reference.Digested); ok {
		return errors.New("a built image has no digest to name: give a tag")
	}
	return nil
}

// imageChanges make the imported tree an image with the official postgres
// image's interface.
var imageChanges = []string{
	"ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"ENV PGDATA=/var/lib/postgresql/data",
	"ENV LANG=C.UTF-8",
	`ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]`,
	`CMD ["postgres"]`,
	"EXPOSE 5432",
	`LABEL org.opencontainers.image.description="PostgreSQL 15 on Debian bookworm, built by phasekit image build"`,
}

// entrypoint initialises the cluster on first start and runs the server,
// reading the same environment as the official postgres image's
// docker-entrypoint.sh (without its init scripts).
const entrypoint = `#!/bin/sh
# Written by phasekit image build. Reads the official postgres image's
# environment: POSTGRES_PASSWORD, POSTGRES_USER, POSTGRES_DB,
# POSTGRES_HOST_AUTH_METHOD, PGDATA.
set -eu

: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
export PGDATA

# "docker run IMAGE -c fsync=off" runs the server with that option.
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
	set -- postgres "$@"
fi
if [ "$1" != postgres ]; then
	exec "$@"
fi

# PostgreSQL refuses to run as root: prepare the directories, then come back
# as the postgres user.
if [ "$(id -u)" = 0 ]; then
	mkdir -p "$PGDATA" /var/run/postgresql
	chown postgres:postgres "$PGDATA" /var/run/postgresql
	chmod 700 "$PGDATA"
	exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
		echo "error: the database is uninitialized and POSTGRES_PASSWORD is not set" >&2
		echo "       (set it, or POSTGRES_HOST_AUTH_METHOD=trust to allow all connections without one)" >&2
		exit 1
	fi
	pwopt=
	if [ -n "${POSTGRES_PASSWORD:-}" ]; then
		pwfile=$(mktemp)
		printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
		pwopt="--pwfile=$pwfile"
	fi
	initdb -D "$PGDATA" --username="$POSTGRES_USER" $pwopt \
		--encoding=UTF8 --locale=C --auth-local=trust \
		--auth-host="$POSTGRES_HOST_AUTH_METHOD" --no-sync
	[ -z "$pwopt" ] || rm -f "$pwfile"
	printf 'host all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"
	printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
	if [ "$POSTGRES_DB" != postgres ]; then
		# Single-user mode: no server to start and stop, nothing listening yet.
		db=$(printf '%s' "$POSTGRES_DB" | sed 's/"/""/g')
		printf 'CREATE DATABASE "%s"\n' "$db" | postgres --single -D "$PGDATA" postgres >/dev/null
	fi
	echo "PostgreSQL init process complete; ready for start up."
fi
shift
exec postgres "$@"
`

// finishRootfs adds the entrypoint, removes what a throwaway server does not
// need (apt caches and lists, documentation, the cluster the package made)
// and checks that the programs the entrypoint runs are there.
func finishRootfs(root string) error {
	ep := filepath.Join(root, "usr/local/bin/docker-entrypoint.sh")
	if err := os.MkdirAll(filepath.Dir(ep), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(ep, []byte(entrypoint), 0o755); err != nil {
		return fmt.Errorf("write entrypoint: %w", err)
	}
	trim := []string{
		"var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*",
		"usr/share/doc/*", "usr/share/man/*", "usr/share/info/*", "usr/share/locale/*", "usr/share/lintian",
		"usr/share/postgresql/15/man",
		// JIT: LLVM is most of the image, and a server without its JIT
		// provider simply does not compile queries.
		"usr/lib/postgresql/15/lib/llvmjit*", "usr/lib/postgresql/15/lib/bitcode", "usr/lib/*/libLLVM-*", "usr/lib/*/libz3.*",
		"usr/share/i18n", // locale sources, for locale-gen
		// postgresql-15 creates a cluster "main" on installation; ours goes to PGDATA.
		"var/lib/postgresql/15", "etc/postgresql/15",
		"var/log/*.log", "var/log/apt/*", "tmp/*", "var/tmp/*",
		// Docker provides these per container; the build host's copies do not belong here.
		"etc/hostname", "etc/resolv.conf",
	}
	for _, pattern := range trim {
		matches, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			return err
		}
		for _, m := range matches {
			if err := os.RemoveAll(m); err != nil {
				return fmt.Errorf("trim rootfs: %w", err)
			}
		}
	}
	for _, p := range []string{"usr/lib/postgresql/15/bin/postgres", "usr/lib/postgresql/15/bin/initdb", "usr/bin/setpriv", "usr/bin/sed"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			return fmt.Errorf("rootfs lacks /%s after debootstrap: %w", p, err)
		}
	}
	return nil
}

// importRootfs streams root as a tar into docker import.
func importRootfs(ctx context.Context, cli interface {
	ImageImport(context.Context, client.ImageImportSource, string, client.ImageImportOptions) (client.ImageImportResult, error)
}, root, tag string) error {
	tarCmd := exec.CommandContext(ctx, "tar", "--numeric-owner", "-C", root, "-c", ".")
	var stderr bytes.Buffer
	tarCmd.Stderr = &stderr
	out, err := tarCmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := tarCmd.Start(); err != nil {
		return fmt.Errorf("tar the rootfs: %w", err)
	}
	resp, err := cli.ImageImport(ctx, client.ImageImportSource{Source: out, SourceName: "-"}, tag,
		client.ImageImportOptions{Changes: imageChanges, Message: "phasekit image build"})
	if err == nil {
		err = importError(resp)
		resp.Close()
	}
	// Drain what the daemon did not read, so that tar can exit.
	_, _ = io.Copy(io.Discard, out)
	if werr := tarCmd.Wait(); werr != nil && err == nil {
		err = fmt.Errorf("tar the rootfs: %w: %s", werr, strings.TrimSpace(stderr.String()))
	}
	if err != nil {
		return fmt.Errorf("docker import: %w", err)
	}
	return nil
}

// importError reads the daemon's JSON progress stream, which reports a
// failure as a message rather than as an HTTP status.
func importError(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var msg struct {
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("read the daemon's answer: %w", err)
		}
		if msg.ErrorDetail != nil && msg.ErrorDetail.Message != "" {
			return errors.New(msg.ErrorDetail.Message)
		}
		if msg.Error != "" {
			return errors.New(msg.Error)
		}
	}
}

// findDebootstrap finds debootstrap, installing it with apt-get if missing.
func findDebootstrap(ctx context.Context, logf func(string, ...any)) (string, error) {
	look := func() (string, error) {
		if p, err := exec.LookPath("debootstrap"); err == nil {
			return p, nil
		}
		for _, p := range []string{"/usr/sbin/debootstrap", "/sbin/debootstrap"} {
			if isExecutable(p) {
				return p, nil
			}
		}
		return "", exec.ErrNotFound
	}
	if p, err := look(); err == nil {
		return p, nil
	}
	aptGet, err := exec.LookPath("apt-get")
	if err != nil {
		return "", errors.New("debootstrap not found and no apt-get to install it with: install debootstrap")
	}
	logf("installing debootstrap with apt-get")
	for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", "debootstrap"}} {
		cmd := exec.CommandContext(ctx, aptGet, args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	p, err := look()
	if err != nil {
		return "", errors.New("debootstrap still not found after apt-get install debootstrap")
	}
	return p, nil
}

// aptMirror returns the first Debian archive URI in the apt sources under
// root (deb822 .sources files first, then sources.list), skipping the
// security archive; defaultMirror if there is none.
func aptMirror(root string) string {
	files, _ := filepath.Glob(filepath.Join(root, "etc/apt/sources.list.d/*.sources"))
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if m := mirrorFromDeb822(string(b)); m != "" {
			return m
		}
	}
	lists, _ := filepath.Glob(filepath.Join(root, "etc/apt/sources.list.d/*.list"))
	sort.Strings(lists)
	for _, f := range append([]string{filepath.Join(root, "etc/apt/sources.list")}, lists...) {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if m := mirrorFromList(string(b)); m != "" {
			return m
		}
	}
	return defaultMirror
}

// mirrorFromDeb822 reads stanzas of Types/URIs/Suites fields.
func mirrorFromDeb822(s string) string {
	for _, stanza := range regexp.MustCompile(`\n\s*\n`).Split(s, -1) {
		fields := map[string]string{}
		for _, line := range strings.Split(stanza, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, " ") {
				fields[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
			}
		}
		if strings.EqualFold(fields["enabled"], "no") || !containsWord(fields["types"], "deb") {
			continue
		}
		if strings.Contains(fields["suites"], "-security") {
			continue
		}
		for _, uri := range strings.Fields(fields["uris"]) {
			if usableMirror(uri) {
				return strings.TrimRight(uri, "/")
			}
		}
	}
	return ""
}

// mirrorFromList reads one-line "deb [options] URI suite components" entries.
func mirrorFromList(s string) string {
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") {
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) == 0 {
				continue
			}
			f = f[1:]
		}
		if len(f) >= 2 && !strings.Contains(f[1], "-security") && usableMirror(f[0]) {
			return strings.TrimRight(f[0], "/")
		}
	}
	return ""
}

func usableMirror(uri string) bool {
	return (strings.HasPrefix(uri, "http://") || strings.HasPrefix(uri, "https://")) && !strings.Contains(uri, "debian-security")
}

func containsWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

// removeRootfs removes the build directory, first unmounting what
// debootstrap may have left mounted in it: removing the files of a /proc or
// a bind-mounted /dev would reach the host's.
func removeRootfs(dir string) error {
	for _, mp := range mountsUnder(dir) {
		_ = exec.Command("umount", "-l", mp).Run()
	}
	if left := mountsUnder(dir); len(left) > 0 {
		return fmt.Errorf("left %s in place: still mounted: %s", dir, strings.Join(left, ", "))
	}
	if err := os.RemoveAll(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

// mountsUnder lists the mount points below dir, deepest first.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var mps []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		// Field 5 is the mount point, with spaces and the like octal-escaped.
		mp := unescapeMountinfo(f[4])
		if strings.HasPrefix(mp, dir+"/") {
			mps = append(mps, mp)
		}
	}
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	return mps
}

func unescapeMountinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// debootstrapProgress passes debootstrap's output on to the log, except the
// line per package for each of its passes: one summary line per pass instead.
type debootstrapProgress struct {
	log     io.Writer
	partial []byte
	pass    string // the pass whose per-package lines are being counted
	count   int
}

var perPackage = regexp.MustCompile(`^I: (Retrieving|Validating|Extracting|Unpacking|Configuring) (\S+ \S+|\S+\.\.\.)$`)

// passOf names debootstrap's pass for a per-package verb; Validating
// follows each Retrieving and belongs to its pass.
var passOf = map[string]string{
	"Retrieving": "retrieved", "Validating": "retrieved",
	"Extracting": "extracted", "Unpacking": "unpacked", "Configuring": "configured",
}

func (p *debootstrapProgress) Write(b []byte) (int, error) {
	if p.log == nil {
		return len(b), nil
	}
	p.partial = append(p.partial, b...)
	consumed := 0
	for {
		i := bytes.IndexByte(p.partial[consumed:], '\n')
		if i < 0 {
			break
		}
		p.line(strings.TrimRight(string(p.partial[consumed:consumed+i]), "\r "))
		consumed += i + 1
	}
	p.partial = append(p.partial[:0], p.partial[consumed:]...)
	return len(b), nil
}

func (p *debootstrapProgress) line(l string) {
	if m := perPackage.FindStringSubmatch(l); m != nil {
		if pass := passOf[m[1]]; pass != p.pass {
			p.flush()
			p.pass = pass
		}
		if m[1] != "Validating" {
			p.count++
		}
		return
	}
	p.flush()
	if len(l) > 160 {
		l = l[:157] + "..."
	}
	fmt.Fprintf(p.log, "image: debootstrap: %s\n", l)
}

func (p *debootstrapProgress) flush() {
	if p.count > 0 {
		fmt.Fprintf(p.log, "image: debootstrap: %s %d packages\n", p.pass, p.count)
	}
	p.pass, p.count = "", 0
}

func megabytes(n int64) string { return fmt.Sprintf("%.0f MB", float64(n)/1e6) }
