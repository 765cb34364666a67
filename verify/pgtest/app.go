package pgtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	appOnce sync.Once
	appBin  string
	appErr  error
)

// SampleApp builds examples/app (the sample app versions of the Chinook
// rename) once per test binary and returns the binary's path; Main removes it.
func SampleApp(t testing.TB) string {
	t.Helper()
	appOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			appErr = err
			return
		}
		dir, err := os.MkdirTemp("", "phasekit-app-")
		if err != nil {
			appErr = err
			return
		}
		tempDirs.add(dir)
		appBin = filepath.Join(dir, "app")
		cmd := exec.Command("go", "build", "-o", appBin, "./examples/app")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			appErr = fmt.Errorf("go build ./examples/app: %w\n%s", err, out)
		}
	})
	if appErr != nil {
		t.Fatalf("pgtest: %v", appErr)
	}
	return appBin
}

// moduleRoot is the directory holding go.mod, at or above the working directory.
func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod in %s or above", wd)
		}
		dir = parent
	}
}

// tempDirs are removed by Main when the tests end.
var tempDirs dirList

type dirList struct {
	mu   sync.Mutex
	dirs []string
}

func (d *dirList) add(dir string) {
	d.mu.Lock()
	d.dirs = append(d.dirs, dir)
	d.mu.Unlock()
}

func (d *dirList) removeAll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, dir := range d.dirs {
		_ = os.RemoveAll(dir)
	}
	d.dirs = nil
}
