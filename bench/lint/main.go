// Command lint times `phasekit lint` on the shared lint corpus against
// squawk's figures (../shared/bench/lint/README.md): it writes the corpus
// with the shared generator (1000 files, 10,122 statements, seed 42) into a
// temporary directory, runs the binary on every file in one invocation and on
// one 5-statement file, and prints the medians with their ratio to squawk's
// and PASS or FAIL for each.
//
// The figures are wall-clock times of whole invocations, as squawk's were
// taken, so they include the binary's start, printed on its own line
// (`phasekit lint --help`). The machine is shared and noisy: the user+system
// CPU time is printed beside each median to tell a slow run from a busy
// machine, and -baseline times a second binary (say, main's) in the same
// runs, interleaved with the first, for a before/after that both saw the
// same machine.
//
// The stage lines time lint's stages in this process, with the lint and
// change packages this command was built from (not the binary's): reading
// (pg_query's parser and the classification into changes, a worker per
// CPU), the lint rules, and writing the text report.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/lint"
)

// squawk 2.66.0 on the same corpus and machine kind (README of the shared
// benchmark): gcc reporter, both cores, and one 5-statement file.
const (
	squawkAll = 0.258
	squawkOne = 0.0128
)

func main() {
	bin := flag.String("phasekit", "bin/phasekit", "the phasekit binary to time")
	baseline := flag.String("baseline", "", "another phasekit binary to time in the same runs, interleaved (e.g. main's), for a before/after")
	gen := flag.String("gen", "../shared/bench/lint/gen.py", "the shared corpus generator")
	runs := flag.Int("runs", 7, "timed runs of each case (the median is printed)")
	flag.Parse()

	dir, err := os.MkdirTemp("", "phasekit-bench-lint-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	if out, err := exec.Command("python3", *gen, dir).CombinedOutput(); err != nil {
		fail(fmt.Errorf("%s: %w\n%s", *gen, err, out))
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.sql"))
	if err != nil || len(files) == 0 {
		fail(fmt.Errorf("the generator wrote no .sql file into %s", dir))
	}
	sort.Strings(files)
	one, err := fiveStatementFile(files)
	if err != nil {
		fail(err)
	}

	bins := []string{*bin}
	if *baseline != "" {
		bins = append(bins, *baseline)
	}
	fmt.Printf("phasekit lint on the shared corpus (%d files), median of %d runs after one warm-up", len(files), *runs)
	if *baseline != "" {
		fmt.Printf(", %s and %s interleaved", *bin, *baseline)
	}
	fmt.Println()
	fmt.Printf("%-38s %10s %10s %10s %8s %s\n", "case", "median s", "cpu s", "squawk s", "ratio", "")
	all := timeLint(bins, append([]string{"lint"}, files...), *runs)
	okAll := report("all files, one invocation", bins, all, squawkAll)
	for i, b := range bins {
		fmt.Printf("%-38s %10.5f %10.5f\n", label("  per file", b, len(bins) > 1 && i > 0), all[i].wall/float64(len(files)), all[i].cpu/float64(len(files)))
	}
	okOne := report("one 5-statement file", bins, timeLint(bins, []string{"lint", one}, *runs), squawkOne)
	start := timeLint(bins, []string{"lint", "--help"}, *runs)
	for i, b := range bins {
		fmt.Printf("%-38s %10.4f %10.4f\n", label("process start (lint --help)", b, len(bins) > 1 && i > 0), start[i].wall, start[i].cpu)
	}
	stages(files, *runs)
	if !okAll || !okOne {
		fmt.Println("lint speed: FAIL (slower than squawk in at least one case)")
		return
	}
	fmt.Println("lint speed: PASS (faster than squawk in both cases)")
}

// label names a line; the baseline's lines say so.
func label(name, bin string, isBaseline bool) string {
	if isBaseline {
		return name + " [baseline]"
	}
	return name
}

// report prints a case's line for each binary; it reports whether the first
// binary was faster than squawk.
func report(name string, bins []string, t []times, squawk float64) bool {
	for i := range bins {
		verdict := "PASS"
		if t[i].wall >= squawk {
			verdict = "FAIL"
		}
		fmt.Printf("%-38s %10.4f %10.4f %10.4f %7.2fx %s\n", label(name, bins[i], i > 0), t[i].wall, t[i].cpu, squawk, t[i].wall/squawk, verdict)
	}
	return t[0].wall < squawk
}

// times are the median wall-clock and user+system seconds of a case.
type times struct{ wall, cpu float64 }

// timeLint runs each binary with args once to warm the page cache, then
// runs times, the binaries in turn, and returns each one's medians. Exit
// code 1 is expected (the corpus has error-level findings); 2 or more
// means lint could not read its input.
func timeLint(bins, args []string, runs int) []times {
	walls := make([][]float64, len(bins))
	cpus := make([][]float64, len(bins))
	for r := 0; r <= runs; r++ {
		for i, bin := range bins {
			cmd := exec.Command(bin, args...)
			start := time.Now()
			err := cmd.Run()
			elapsed := time.Since(start).Seconds()
			if err != nil {
				if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
					fail(fmt.Errorf("%s %s: %w", bin, args[0], err))
				}
			}
			if r == 0 {
				continue
			}
			walls[i] = append(walls[i], elapsed)
			st := cmd.ProcessState
			cpus[i] = append(cpus[i], (st.UserTime() + st.SystemTime()).Seconds())
		}
	}
	out := make([]times, len(bins))
	for i := range bins {
		out[i] = times{median(walls[i]), median(cpus[i])}
	}
	return out
}

// stages times lint's stages on the corpus in this process, as the CLI runs
// them without a schema, and prints their medians.
func stages(files []string, runs int) {
	var read, rules, write []float64
	for r := 0; r <= runs; r++ {
		t0 := time.Now()
		ms, err := change.ReadFiles(files, change.ReadFileForLint)
		if err != nil {
			fail(err)
		}
		t1 := time.Now()
		res, err := lint.Check(ms, nil)
		if err != nil {
			fail(err)
		}
		t2 := time.Now()
		lint.WriteText(io.Discard, res)
		t3 := time.Now()
		if r == 0 {
			continue
		}
		read = append(read, t1.Sub(t0).Seconds())
		rules = append(rules, t2.Sub(t1).Seconds())
		write = append(write, t3.Sub(t2).Seconds())
	}
	fmt.Printf("stages on the corpus, in process (this source), median of %d:\n", runs)
	fmt.Printf("  %-32s %10.4f\n", "read (parse, classify; parallel)", median(read))
	fmt.Printf("  %-32s %10.4f\n", "lint rules", median(rules))
	fmt.Printf("  %-32s %10.4f\n", "write text", median(write))
}

// fiveStatementFile is the first file (by name) with exactly five
// statements, the size squawk's one-file figure was taken on.
func fiveStatementFile(files []string) (string, error) {
	for _, f := range files {
		m, err := change.ReadSQLFileForLint(f)
		if err != nil {
			return "", err
		}
		if len(m.Statements) == 5 {
			return f, nil
		}
	}
	return "", fmt.Errorf("no 5-statement file in the corpus")
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench/lint:", err)
	os.Exit(1)
}
