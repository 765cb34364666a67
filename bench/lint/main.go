// Command lint times `phasekit lint` on the shared lint corpus against
// squawk's figures (../shared/bench/lint/README.md): it writes the corpus
// with the shared generator (1000 files, 10,122 statements, seed 42) into a
// temporary directory, runs the binary on every file in one invocation and on
// one 5-statement file, and prints the medians with their ratio to squawk's
// and PASS or FAIL for each.
//
// The figures are wall-clock times of whole invocations, as squawk's were
// taken, so they include the binary's start. The machine is shared and
// noisy: the user+system CPU time is printed beside each median to tell a
// slow run from a busy machine.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"github.com/phasekit/phasekit/change"
)

// squawk 2.66.0 on the same corpus and machine kind (README of the shared
// benchmark): gcc reporter, both cores, and one 5-statement file.
const (
	squawkAll = 0.258
	squawkOne = 0.0128
)

func main() {
	bin := flag.String("phasekit", "bin/phasekit", "the phasekit binary to time")
	gen := flag.String("gen", "../shared/bench/lint/gen.py", "the shared corpus generator")
	runs := flag.Int("runs", 5, "timed runs of each case (the median is printed)")
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

	fmt.Printf("phasekit lint on the shared corpus (%d files), median of %d runs after one warm-up\n", len(files), *runs)
	fmt.Printf("%-28s %10s %12s %10s %8s %s\n", "case", "median s", "cpu s", "squawk s", "ratio", "")
	okAll := report("all files, one invocation", *bin, files, *runs, squawkAll)
	okOne := report("one 5-statement file", *bin, []string{one}, *runs, squawkOne)
	if !okAll || !okOne {
		fmt.Println("lint speed: FAIL (slower than squawk in at least one case)")
		return
	}
	fmt.Println("lint speed: PASS (faster than squawk in both cases)")
}

// report times one case and prints its line; it reports whether phasekit
// was faster than squawk.
func report(name, bin string, files []string, runs int, squawk float64) bool {
	wall, cpu := timeLint(bin, files, runs)
	ratio := wall / squawk
	verdict := "PASS"
	if wall >= squawk {
		verdict = "FAIL"
	}
	fmt.Printf("%-28s %10.4f %12.4f %10.4f %7.2fx %s\n", name, wall, cpu, squawk, ratio, verdict)
	return wall < squawk
}

// timeLint runs `bin lint files...` once to warm the page cache, then runs
// times, and returns the median wall-clock and user+system seconds. Exit
// code 1 is expected (the corpus has error-level findings); 2 or more
// means lint could not read its input.
func timeLint(bin string, files []string, runs int) (wall, cpu float64) {
	var walls, cpus []float64
	for i := 0; i <= runs; i++ {
		cmd := exec.Command(bin, append([]string{"lint"}, files...)...)
		start := time.Now()
		err := cmd.Run()
		elapsed := time.Since(start).Seconds()
		if err != nil {
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
				fail(fmt.Errorf("%s lint: %w", bin, err))
			}
		}
		if i == 0 {
			continue
		}
		walls = append(walls, elapsed)
		st := cmd.ProcessState
		cpus = append(cpus, (st.UserTime() + st.SystemTime()).Seconds())
	}
	return median(walls), median(cpus)
}

// fiveStatementFile is the first file (by name) with exactly five
// statements, the size squawk's one-file figure was taken on.
func fiveStatementFile(files []string) (string, error) {
	for _, f := range files {
		m, err := change.ReadSQLFile(f)
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
