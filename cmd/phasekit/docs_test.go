package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/phasekit/phasekit/verify/pgtest"
)

// Every `phasekit` command line in README.md and docs/*.md (in a fenced or
// an indented code block) is listed in docRuns, in the order the document
// gives them: run against the built binary and a throwaway database, or
// skipped with the reason. A command added to the docs fails
// TestDocCommandsListed until it is listed here.

// docCommand is a command line as a document writes it, continuation lines
// joined.
type docCommand struct {
	file string
	line int
	text string
}

// docRun says what to do with one command of a document.
type docRun struct {
	cmd string
	// exit is the code the document states (0 unless it says otherwise).
	exit int
	// skip, when set, is why the command does not run here.
	skip string
	// before prepares what the document does by other means (psql) just
	// before this command.
	before func(t *testing.T, env *docEnv)
}

// Reasons shared by several skipped commands.
const (
	synopsis   = "synopsis: placeholders and optional parts, not a command"
	prometheus = "needs a Prometheus at 127.0.0.1:9090 (none here; the gate is tested with a real one in gate/)"
	ciConfig   = "a CI or deploy configuration's step: its paths (/plan, ci/*.dump, $PIPELINE, $PROMETHEUS_URL) exist in that pipeline only"
	ownFiles   = "runs on the reader's own files (schema.sql, migrations/, fleet.yaml), not shipped"
)

var docRuns = map[string][]docRun{
	"README.md": {
		{cmd: `bin/phasekit plan --schema ../shared/datasets/chinook/chinook-schema.sql --out build/plan testdata/demo/rename_email.sql`},
		{cmd: `bin/phasekit plan --dsn "$DATABASE_URL" migration.sql --format markdown`},
		{cmd: `bin/phasekit plan --dir ../shared/datasets/kratos-migrations/migrations --version 20200402142539000000`},
		{cmd: `bin/phasekit lint --format sarif migrations/*.sql`, skip: ownFiles},
		{cmd: `bin/phasekit spec-schema > change-spec.schema.json`},
		{cmd: `bin/phasekit --dsn "$DATABASE_URL" apply --plan build/plan --until backfill`},
		{cmd: `bin/phasekit --dsn "$DATABASE_URL" apply --plan build/plan --phase contract`},
		{cmd: `bin/phasekit --dsn "$DATABASE_URL" status`},
		{cmd: `bin/phasekit verify --plan build/plan --data ../shared/datasets/chinook/chinook.dump --old-app "bin/app -version v1 check" --new-app "bin/app -version v2 check" --shadow testdata/apps/chinook/shadow.yaml --mask customer.email=email --junit build/verify.xml --out build/verify.json`},
		{cmd: `bin/phasekit zeta --plan build/plan --data ../shared/datasets/chinook/chinook.dump --backend "bin/app -version v1 serve" --frontend "bin/app -version v2 frontend" --phase backfill`},
		{cmd: `bin/phasekit plan --schema ../shared/datasets/chinook/chinook-schema.sql --pipeline testdata/pipeline/pipeline.yaml testdata/demo/rename_email.sql`},
		{cmd: `bin/phasekit --dsn "$DATABASE_URL" record deploy --pipeline testdata/pipeline/pipeline.yaml --stage prod --wave one-box --version v42`},
		{cmd: `bin/phasekit --dsn "$DATABASE_URL" gate contract --plan build/plan --pipeline testdata/pipeline/pipeline.yaml --prometheus http://127.0.0.1:9090`, skip: prometheus},
		{cmd: `bin/phasekit fleet apply --fleet fleet.yaml --plan build/plan --phase expand`, skip: ownFiles},
		{cmd: `bin/phasekit report --plan build/plan --dsn "$DATABASE_URL" --verify build/verify.json --pipeline testdata/pipeline/pipeline.yaml --out build/report.html`},
	},
	"docs/change-spec.md": {
		{cmd: `bin/phasekit plan --schema ../shared/datasets/chinook/chinook-schema.sql testdata/demo/split_address.yaml`},
	},
	"docs/execution.md": {
		{cmd: `bin/phasekit --dsn "$DATABASE_URL" apply --plan build/plan              # the next phase`},
		{cmd: `bin/phasekit --dsn "$DATABASE_URL" apply --plan build/plan --until backfill`},
		{cmd: `bin/phasekit --dsn "$DATABASE_URL" apply --plan build/plan --phase contract`},
		{cmd: `bin/phasekit --dsn "$DATABASE_URL" apply --plan build/plan --dry-run`},
		{cmd: `bin/phasekit --dsn "$DATABASE_URL" status [--plan build/plan] [--format json]`, skip: synopsis},
		{cmd: `bin/phasekit --dsn "$DATABASE_URL" rollback --plan build/plan [--to expand | --all] [--force]`, skip: synopsis},
		{cmd: `bin/phasekit --dsn "$DATABASE_URL" purge --older-than 168h [--dry-run]`, skip: synopsis},
		{cmd: `bin/phasekit plan --schema schema.sql --app-version-table schema_migrations --out build/plan migrations/000181_rename_email.up.sql`, skip: ownFiles},
	},
	"docs/fleet.md": {
		{cmd: `bin/phasekit fleet apply  --fleet fleet.yaml --plan build/plan --phase expand`, skip: ownFiles},
		{cmd: `bin/phasekit fleet status --fleet fleet.yaml --plan build/plan [--format json]`, skip: synopsis},
		{cmd: `bin/phasekit fleet apply --fleet FILE --plan DIR --phase KIND`, skip: synopsis},
		{cmd: `bin/phasekit fleet status --fleet FILE --plan DIR [--timeout 10s] [--format json]`, skip: synopsis},
		{cmd: `bin/phasekit --dsn "$SHARD_EU1_CANARY_DSN" plan --out build/plan testdata/demo/rename_email.sql`},
		{cmd: `bin/phasekit fleet apply --fleet testdata/fleet/fleet.yaml --plan build/plan --phase expand --no-bake`},
		{cmd: `bin/phasekit fleet apply --fleet testdata/fleet/fleet.yaml --plan build/plan --phase dual-write --no-bake 2>/dev/null`, exit: 1, before: conflictingTrigger},
	},
	"docs/gate.md": {
		{cmd: `phasekit record deploy --dsn DSN --pipeline pipeline.yaml --stage S [--wave W] --version V [--at TIME]`, skip: synopsis},
		{cmd: `phasekit gate contract --dsn DSN --plan DIR --pipeline pipeline.yaml [--prometheus URL] [--now TIME] [--format text|json]`, skip: synopsis},
		{cmd: `phasekit gate serve    --dsn DSN --plan DIR --pipeline pipeline.yaml [--prometheus URL] [--addr 127.0.0.1:8080] [--timeout 8s]`, skip: synopsis},
		{cmd: `phasekit watch         --dsn DSN --plan DIR --pipeline pipeline.yaml --prometheus URL [--phase KIND] [--for D] [--interval 15s]`, skip: synopsis},
		{cmd: `phasekit record deploy --pipeline testdata/pipeline/pipeline.yaml --stage prod --wave one-box --version v42 --at 2026-03-02T15:00:00Z`},
		{cmd: `phasekit gate contract --plan build/plan --pipeline testdata/pipeline/pipeline.yaml --prometheus http://127.0.0.1:9090`, skip: prometheus},
		{cmd: `phasekit apply --plan build/plan --phase contract --pipeline testdata/pipeline/pipeline.yaml --prometheus http://127.0.0.1:9090`, skip: prometheus},
		{cmd: `phasekit watch --plan build/plan --pipeline testdata/pipeline/pipeline.yaml --prometheus http://127.0.0.1:9090 --for 15m`, skip: prometheus},
		{cmd: `bin/phasekit --dsn "$DATABASE_URL" plan --pipeline $P --out build/plan testdata/demo/rename_email.sql`},
		{cmd: `bin/phasekit --dsn "$DATABASE_URL" apply --plan build/plan --until backfill`},
		{cmd: `bin/phasekit record deploy --pipeline $P --stage ${s%%:*} --version v42 --at 2026-03-02T${s#*:}:00Z`, skip: "the body of a shell loop over $s; the same command runs below with a stage and wave written out"},
		{cmd: `bin/phasekit record deploy --pipeline $P --stage prod --wave one-box   --version v42 --at 2026-03-02T15:00:00Z`},
		{cmd: `bin/phasekit record deploy --pipeline $P --stage prod --wave us-east-1 --version v42 --at 2026-03-02T17:00:00Z`},
		{cmd: `bin/phasekit record deploy --pipeline $P --stage prod --wave us-west-2 --version v42 --at 2026-03-02T18:00:00Z`},
		{cmd: `bin/phasekit gate contract --plan build/plan --pipeline $P --prometheus http://127.0.0.1:9090 --now 2026-03-02T19:00:00Z`, exit: 3, skip: prometheus},
		{cmd: `bin/phasekit gate contract --plan build/plan --pipeline $P --prometheus http://127.0.0.1:9090 --now 2026-03-02T19:30:00Z`, skip: prometheus},
		{cmd: `bin/phasekit apply --plan build/plan --phase contract --pipeline $P --prometheus http://127.0.0.1:9090`, exit: 1, skip: prometheus},
	},
	"docs/integrations.md": {
		{cmd: `phasekit gate serve --dsn DSN --plan DIR --pipeline pipeline.yaml [--prometheus URL]`, skip: synopsis},
		{cmd: `phasekit apply --plan /plan --phase contract --pipeline /etc/phasekit/pipeline.yaml --prometheus http://prometheus.monitoring:9090`, skip: ciConfig},
		{cmd: `phasekit gate contract --plan /plan --pipeline /etc/phasekit/pipeline.yaml --prometheus "$PROMETHEUS_URL"`, skip: ciConfig},
		{cmd: `bin/phasekit verify --plan build/plan --data ci/checkout-sample.dump --provider docker`, skip: ciConfig},
		{cmd: `phasekit gate contract --plan build/plan --pipeline "$PIPELINE" --prometheus "$PROMETHEUS_URL" --format json > gate.json || code=$?`, skip: ciConfig},
		{cmd: `phasekit verify --plan build/plan --data ci/checkout-sample.dump --provider local`, skip: ciConfig},
	},
	"docs/plan-check.md": {
		{cmd: `bin/phasekit plan --schema ../shared/datasets/chinook/chinook-schema.sql testdata/demo/rename_email.sql`},
		{cmd: `bin/phasekit plan --schema ../shared/datasets/chinook/chinook-schema.sql testdata/demo/stamp_tracks.sql`},
		{cmd: `bin/phasekit plan --dir migrations/ --version 20240101120000 --out build/plan`, skip: ownFiles},
		{cmd: `bin/phasekit replay --dir ../shared/datasets/kratos-migrations/migrations --order ../shared/datasets/kratos-migrations/postgres-order.txt`, skip: "walks all 346 versions, minutes of work: make corpus runs it, plancheck's TestKratosHistory covers it"},
	},
	"docs/report.md": {
		{cmd: `bin/phasekit plan --schema ../shared/datasets/chinook/chinook-schema.sql --pipeline testdata/pipeline/pipeline.yaml --out /tmp/rename testdata/demo/rename_email.sql`},
		{cmd: `bin/phasekit report --plan /tmp/rename --out /tmp/rename/review.html`},
		{cmd: `bin/phasekit report --plan /tmp/rename --format markdown`},
		{cmd: `bin/phasekit report --plan build/demo-plan --verify build/verify.json --pipeline testdata/pipeline/pipeline.yaml --format html --out build/report.html`, skip: "needs make demo's build/demo-plan and build/verify.json"},
		{cmd: `bin/phasekit report --plan /tmp/rename --dsn "$DATABASE_URL" --calibrate --out review.html`},
	},
	"docs/verify.md": {
		{cmd: `phasekit verify --plan DIR (--data FILE | --source-dsn DSN)`, skip: synopsis},
		{cmd: `phasekit --format markdown verify ...     # for a pull-request comment`, skip: synopsis},
		{cmd: `phasekit zeta --plan DIR --frontend CMD --backend CMD [--ready URL] [--phase KIND]`, skip: synopsis},
		{cmd: `phasekit image build [--tag TAG]          # a PostgreSQL image for the docker provider, built locally`, skip: synopsis},
		{cmd: `bin/phasekit plan --schema ../shared/datasets/chinook/chinook-schema.sql --out build/plan testdata/demo/rename_email.sql`},
		{cmd: `bin/phasekit verify --plan build/plan --data ../shared/datasets/chinook/chinook.dump --old-app "bin/app -version v1 check" --new-app "bin/app -version v2 check" --old-workload testdata/apps/chinook/v1.sql --new-workload testdata/apps/chinook/v2.sql --shadow testdata/apps/chinook/shadow.yaml --mask customer.email=email --junit build/verify.xml`},
		{cmd: `bin/phasekit zeta --plan build/plan --data ../shared/datasets/chinook/chinook.dump --backend "bin/app -version v1 serve" --frontend "bin/app -version v2 frontend" --ready "http://127.0.0.1:{port}/health" --phase backfill --phase contract`},
	},
}

// docSetups does, before a document's first command, what the document
// assumes was done before it.
var docSetups = map[string]func(t *testing.T, env *docEnv){
	// A plan to apply: the README's.
	"docs/execution.md": func(t *testing.T, env *docEnv) {
		env.mustRun(t, `bin/phasekit plan --schema ../shared/datasets/chinook/chinook-schema.sql --out build/plan testdata/demo/rename_email.sql`)
	},
	// The five Chinook shards of testdata/fleet/fleet.yaml.
	"docs/fleet.md": func(t *testing.T, env *docEnv) {
		for _, s := range []string{"EU1_CANARY", "EU1_A", "EU1_B", "US1_A", "US1_B"} {
			env.vars["SHARD_"+s+"_DSN"] = pgtest.NewDB(t, "chinook")
		}
	},
	// The block sets P.
	"docs/gate.md": func(t *testing.T, env *docEnv) {
		env.vars["P"] = "testdata/pipeline/pipeline.yaml"
	},
}

// conflictingTrigger is fleet.md's psql step: a trigger on one shard that
// already has the name phasekit's dual-write trigger takes.
func conflictingTrigger(t *testing.T, env *docEnv) {
	conn := pgtest.Conn(t, env.vars["SHARD_EU1_B_DSN"])
	if _, err := conn.Exec(t.Context(), `CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
  CREATE TRIGGER zz_phasekit_sync BEFORE UPDATE ON customer FOR EACH ROW EXECUTE FUNCTION audit();`); err != nil {
		t.Fatal(err)
	}
}

// docFiles are the documents whose commands are checked.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot(t), "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := []string{"README.md"}
	for _, f := range files {
		out = append(out, "docs/"+filepath.Base(f))
	}
	return out
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

var (
	fence      = regexp.MustCompile("^\\s*```")
	commandRE  = regexp.MustCompile(`^(\$ )?(bin/)?phasekit\s`)
	indentCode = "    "
)

// extractCommands returns the phasekit command lines of a Markdown
// document: lines of a fenced block, or of an indented block (four spaces
// after a blank line), that start with phasekit or bin/phasekit.
func extractCommands(file, text string) []docCommand {
	var out []docCommand
	lines := strings.Split(text, "\n")
	inFence, inIndent, prevBlank := false, false, true
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if fence.MatchString(l) {
			inFence = !inFence
			continue
		}
		if !inFence {
			blank := strings.TrimSpace(l) == ""
			switch {
			case strings.HasPrefix(l, indentCode) && (prevBlank || inIndent):
				inIndent = true
			case !blank:
				inIndent = false
			}
			prevBlank = blank
			if !inIndent {
				continue
			}
		}
		s := strings.TrimSpace(l)
		if !commandRE.MatchString(s) {
			continue
		}
		start := i
		for strings.HasSuffix(s, `\`) && i+1 < len(lines) {
			i++
			s = strings.TrimSpace(strings.TrimSuffix(s, `\`)) + " " + strings.TrimSpace(lines[i])
		}
		out = append(out, docCommand{file: file, line: start + 1, text: strings.TrimPrefix(s, "$ ")})
	}
	return out
}

// TestDocCommandsListed: every command of the docs is in docRuns, in the
// document's order, and docRuns lists nothing the docs no longer say.
func TestDocCommandsListed(t *testing.T) {
	root := repoRoot(t)
	seen := map[string]bool{}
	for _, file := range docFiles(t) {
		b, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		cmds := extractCommands(file, string(b))
		if len(cmds) == 0 {
			if _, ok := docRuns[file]; ok {
				t.Errorf("%s: listed in docRuns, but has no phasekit command", file)
			}
			continue
		}
		seen[file] = true
		runs := docRuns[file]
		for i, c := range cmds {
			if i >= len(runs) {
				t.Errorf("%s:%d: not in docRuns (run it or say why not): %s", file, c.line, c.text)
				continue
			}
			if runs[i].cmd != c.text {
				t.Errorf("%s:%d: docRuns[%q][%d] is\n\t%s\nthe document says\n\t%s", file, c.line, file, i, runs[i].cmd, c.text)
			}
		}
		for _, r := range runs[min(len(cmds), len(runs)):] {
			t.Errorf("%s: docRuns lists a command the document no longer has: %s", file, r.cmd)
		}
	}
	var files []string
	for f := range docRuns {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		if !seen[f] {
			t.Errorf("docRuns lists %s, which has no phasekit command", f)
		}
	}
}

// TestDocCommands runs the commands of each document in order, in a working
// directory laid out like the repository's (bin/phasekit, bin/app,
// testdata/, examples/, ../shared/datasets), with DATABASE_URL a fresh copy
// of Chinook, and checks each exits as the document says. report.md's
// /tmp/rename becomes a directory of the test's.
func TestDocCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds phasekit and runs the docs' commands, verify and zeta among them")
	}
	bin := buildPhasekit(t)
	app := pgtest.SampleApp(t)
	datasets := filepath.Dir(filepath.Dir(pgtest.DatasetFile(t, "chinook/chinook.dump")))
	root := repoRoot(t)
	for _, file := range docFiles(t) {
		runs, ok := docRuns[file]
		if !ok {
			continue
		}
		t.Run(strings.TrimSuffix(filepath.Base(file), ".md"), func(t *testing.T) {
			env := newDocEnv(t, root, datasets, bin, app)
			if setup := docSetups[file]; setup != nil {
				setup(t, env)
			}
			for _, r := range runs {
				if r.skip != "" {
					t.Logf("skipped: %s\n\t(%s)", r.cmd, r.skip)
					continue
				}
				if r.before != nil {
					r.before(t, env)
				}
				code, out := env.run(t, r.cmd)
				if code != r.exit {
					t.Errorf("%s: exit %d, the document says %d:\n\t%s\n%s", file, code, r.exit, r.cmd, tail(out, 40))
				}
			}
		})
	}
}

// docEnv is a working directory laid out like the repository.
type docEnv struct {
	dir  string
	vars map[string]string
}

func newDocEnv(t *testing.T, root, datasets, bin, app string) *docEnv {
	t.Helper()
	top := t.TempDir()
	dir := filepath.Join(top, "work")
	for _, d := range []string{filepath.Join(dir, "bin"), filepath.Join(top, "shared")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		filepath.Join(dir, "testdata"):           filepath.Join(root, "testdata"),
		filepath.Join(dir, "examples"):           filepath.Join(root, "examples"),
		filepath.Join(dir, "bin", "phasekit"):    bin,
		filepath.Join(dir, "bin", "app"):         app,
		filepath.Join(top, "shared", "datasets"): datasets,
		// The README's "a migration of yours".
		filepath.Join(dir, "migration.sql"): filepath.Join(root, "testdata", "demo", "rename_email.sql"),
	}
	for link, target := range links {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	return &docEnv{dir: dir, vars: map[string]string{"DATABASE_URL": pgtest.NewDB(t, "chinook")}}
}

// run runs cmd with sh in the working directory and returns its exit code
// and output.
func (e *docEnv) run(t *testing.T, cmd string) (int, string) {
	t.Helper()
	cmd = strings.ReplaceAll(cmd, "/tmp/rename", filepath.Join(e.dir, "tmp-rename"))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, "sh", "-c", cmd)
	c.Dir = e.dir
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case k == "PATH":
			// Some docs write phasekit as installed, others bin/phasekit.
			c.Env = append(c.Env, "PATH="+filepath.Join(e.dir, "bin")+string(os.PathListSeparator)+v)
		case k != "DATABASE_URL" && !strings.HasPrefix(k, "PG"):
			c.Env = append(c.Env, kv)
		}
	}
	for k, v := range e.vars {
		c.Env = append(c.Env, k+"="+v)
	}
	out, err := c.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &exit):
		return exit.ExitCode(), string(out)
	default:
		t.Fatalf("run %s: %v", cmd, err)
		return -1, ""
	}
}

func (e *docEnv) mustRun(t *testing.T, cmd string) {
	t.Helper()
	if code, out := e.run(t, cmd); code != 0 {
		t.Fatalf("setup: %s: exit %d\n%s", cmd, code, out)
	}
}

// buildPhasekit builds the command into the test's temporary directory.
func buildPhasekit(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "phasekit")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
