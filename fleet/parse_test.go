package fleet_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/fleet"
)

// example is the fleet file docs/fleet.md shows.
const example = "../testdata/fleet/fleet.yaml"

func TestLoadExample(t *testing.T) {
	f, err := fleet.Load(example)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range f.Waves {
		var ts []string
		for _, tg := range w.Targets {
			ts = append(ts, tg.Name+"="+tg.Env)
		}
		got = append(got, w.Name+":"+w.Bake.String()+":"+strconv.Itoa(w.MaxParallel)+"/"+strconv.Itoa(w.MaxFailures)+":"+strings.Join(ts, ","))
	}
	want := "one-box:10m0s:1/0:eu1-canary=SHARD_EU1_CANARY_DSN " +
		"eu:30m0s:2/0:eu1-a=SHARD_EU1_A_DSN,eu1-b=SHARD_EU1_B_DSN " +
		"us:30m0s:2/1:us1-a=SHARD_US1_A_DSN,us1-b=SHARD_US1_B_DSN"
	if strings.Join(got, " ") != want {
		t.Errorf("waves\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	if f.TargetCount() != 5 {
		t.Errorf("%d targets", f.TargetCount())
	}
	if got := f.Waves[1].Targets[1].EnvPos.String(); got != example+":16:28" {
		t.Errorf("dsn of eu1-b at %s", got)
	}
}

// TestParseErrors: every mistake is an InputError at its file:line:col, and
// a password is never repeated in the message.
func TestParseErrors(t *testing.T) {
	const head = "waves:\n  - name: one\n    targets:\n"
	for _, tc := range []struct {
		name, yaml, pos, msg string
	}{
		{"password in URL", head + "      - {name: a, dsn: \"postgres://app:s3cret@db1/app\"}\n", "f.yaml:4:24", "holds a plaintext password"},
		{"password key=value", head + "      - name: a\n        dsn: host=db1 user=app password=s3cret\n", "f.yaml:5:14", "holds a plaintext password"},
		{"password in query", head + "      - {name: a, dsn: \"postgres://app@db1/app?password=s3cret\"}\n", "f.yaml:4:24", "holds a plaintext password"},
		{"literal DSN", head + "      - {name: eu1-a, dsn: \"postgres://app@db1/app\"}\n", "f.yaml:4:28", `literal DSN "postgres://app@db1/app"`},
		{"literal suggests a variable", head + "      - {name: eu1-a, dsn: \"host=db1\"}\n", "f.yaml:4:28", `write dsn: "${SHARD_EU1_A_DSN}"`},
		{"template", head + "      - {name: a, dsn: \"postgres://app@${HOST}/app\"}\n", "f.yaml:4:24", "exactly one environment variable reference"},
		{"no braces", head + "      - {name: a, dsn: \"$SHARD_A_DSN\"}\n", "f.yaml:4:24", "not a template or $NAME"},
		{"dsn missing", head + "      - {name: a}\n", "f.yaml:4:9", `target a needs "dsn"`},
		{"duplicate target", head + "      - {name: a, dsn: \"${A}\"}\n  - name: two\n    targets:\n      - {name: a, dsn: \"${B}\"}\n", "f.yaml:7:16", `target name "a" is used twice (first at f.yaml:4:16)`},
		{"same variable twice", head + "      - {name: a, dsn: \"${A}\"}\n      - {name: b, dsn: \"${A}\"}\n", "f.yaml:5:24", "reads its DSN from ${A} like the target at f.yaml:4:24"},
		{"duplicate wave", head + "      - {name: a, dsn: \"${A}\"}\n  - name: one\n    targets: [{name: b, dsn: \"${B}\"}]\n", "f.yaml:5:11", `wave name "one" is used twice`},
		{"unknown wave key", head + "      - {name: a, dsn: \"${A}\"}\n    max_paralel: 2\n", "f.yaml:5:5", `unknown field "max_paralel" in a wave (did you mean "max_parallel"?)`},
		{"unknown target key", head + "      - {name: a, dns: \"${A}\"}\n", "f.yaml:4:19", `unknown field "dns" in a target of wave one (did you mean "dsn"?)`},
		{"unknown top key", "wave: []\n", "f.yaml:1:1", `unknown field "wave" in the fleet (did you mean "waves"?)`},
		{"budget lets all fail", "waves:\n  - name: one\n    max_failures: 1\n    targets: [{name: a, dsn: \"${A}\"}]\n", "f.yaml:3:19", "lets all its 1 target(s) fail"},
		{"max_parallel 0", "waves:\n  - name: one\n    max_parallel: 0\n    targets: [{name: a, dsn: \"${A}\"}]\n", "f.yaml:3:19", "max_parallel must be at least 1, not 0"},
		{"max_failures negative", "waves:\n  - name: one\n    max_failures: -1\n    targets: [{name: a, dsn: \"${A}\"}, {name: b, dsn: \"${B}\"}]\n", "f.yaml:3:19", "max_failures must be at least 0"},
		{"bake not a duration", "waves:\n  - name: one\n    bake: 10 minutes\n    targets: [{name: a, dsn: \"${A}\"}]\n", "f.yaml:3:11", `bake "10 minutes" is not a duration`},
		{"no targets", "waves:\n  - name: one\n    targets: []\n", "f.yaml:3:14", "targets must not be empty"},
		{"no waves", "waves: []\n", "f.yaml:1:8", "waves must not be empty"},
		{"empty file", "", "f.yaml:1:1", "empty fleet file"},
		{"name with a space", head + "      - {name: \"eu 1\", dsn: \"${A}\"}\n", "f.yaml:4:16", "may not hold spaces"},
		{"bad YAML", "waves:\n  - name: [\n", "f.yaml:2:1", "invalid YAML"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := fleet.Parse("f.yaml", []byte(tc.yaml))
			var ie *change.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("want *change.InputError, got %v", err)
			}
			if ie.Pos.String() != tc.pos || !strings.Contains(ie.Msg, tc.msg) {
				t.Errorf("got  %v\nwant %s: ...%s...", err, tc.pos, tc.msg)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the message repeats the password: %v", err)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	const src = "waves:\n  - name: one\n    targets:\n      - {name: a, dsn: \"${A_DSN}\"}\n  - name: two\n    targets:\n      - {name: b, dsn: \"${B_DSN}\"}\n      - {name: c, dsn: \"${C_DSN}\"}\n"
	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	f, err := fleet.Parse("f.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Resolve(env(map[string]string{"A_DSN": "postgres://a/x", "B_DSN": "postgres://b/x", "C_DSN": "postgres://c/x"})); err != nil {
		t.Fatal(err)
	}
	if f.Waves[1].Targets[1].DSN != "postgres://c/x" {
		t.Errorf("c's DSN %q", f.Waves[1].Targets[1].DSN)
	}

	// Every unset or empty variable is named, at the first one's dsn, even
	// those of later waves: nothing starts half-configured.
	f, _ = fleet.Parse("f.yaml", []byte(src))
	err = f.Resolve(env(map[string]string{"A_DSN": "postgres://a/x", "C_DSN": " "}))
	var unset *fleet.UnsetError
	var ie *change.InputError
	if !errors.As(err, &unset) || !errors.As(err, &ie) {
		t.Fatalf("want *UnsetError wrapping *InputError, got %v", err)
	}
	if ie.Pos.String() != "f.yaml:7:24" || strings.Join(unset.Vars, ",") != "B_DSN,C_DSN" ||
		!strings.Contains(ie.Msg, "B_DSN (target b) is not set; C_DSN (target c) is empty") {
		t.Errorf("got %v (vars %v)", err, unset.Vars)
	}
	if f.Waves[0].Targets[0].DSN == "" {
		t.Error("a's variable is set but its DSN was not kept")
	}

	// Two variables holding one DSN would make one database two targets.
	f, _ = fleet.Parse("f.yaml", []byte(src))
	err = f.Resolve(env(map[string]string{"A_DSN": "postgres://a/x", "B_DSN": "postgres://a/x", "C_DSN": "postgres://c/x"}))
	if !errors.As(err, &ie) || ie.Pos.String() != "f.yaml:7:24" || !strings.Contains(ie.Msg, "same DSN as target a") {
		t.Errorf("duplicate DSN: %v", err)
	}
}

func TestBakeDefaultsToNone(t *testing.T) {
	f, err := fleet.Parse("f.yaml", []byte("waves:\n  - name: one\n    targets: [{name: a, dsn: \"${A}\"}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if w := f.Waves[0]; w.Bake != 0 || w.MaxParallel != 1 || w.MaxFailures != 0 {
		t.Errorf("defaults: bake %s, max_parallel %d, max_failures %d", w.Bake, w.MaxParallel, w.MaxFailures)
	}
}
