package report_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/phasekit/phasekit/internal/testkit"
	"github.com/phasekit/phasekit/phases"
	"github.com/phasekit/phasekit/report"
)

// Environment of TestHTMLInChromium.
const (
	// artifactsEnv names a directory for the pages and their screenshots
	// (default: the test's temporary directory).
	artifactsEnv = "PHASEKIT_ARTIFACTS"
	// screenshotEnv names a PNG file to write the docs screenshot to,
	// relative to the module root: PHASEKIT_SCREENSHOT=docs/report.png.
	screenshotEnv = "PHASEKIT_SCREENSHOT"
)

// browser finds Chromium: Debian's chromium package, or another Chrome. The
// test skips without one, unless CI=true.
func browser(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testkit.SkipOrFail(t, "no Chromium found (apt-get install chromium; .ci/setup installs it)")
	return ""
}

// tab is one page open in Chromium, with what it asked for and logged.
type tab struct {
	ctx      context.Context
	mu       sync.Mutex
	requests []string
	problems []string
}

// open loads a file in a new tab of the browser, recording every request,
// console call, exception and error or warning of the browser log.
func open(t *testing.T, browserCtx context.Context, file string) *tab {
	t.Helper()
	tb := &tab{}
	ctx, cancel := chromedp.NewContext(browserCtx, chromedp.WithListener(func(ev any) {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			tb.requests = append(tb.requests, ev.Request.URL)
		case *runtime.EventConsoleAPICalled:
			tb.problems = append(tb.problems, fmt.Sprintf("console.%s", ev.Type))
		case *runtime.EventExceptionThrown:
			tb.problems = append(tb.problems, "exception: "+ev.ExceptionDetails.Text)
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError || ev.Entry.Level == cdplog.EntryLevelWarning {
				tb.problems = append(tb.problems, fmt.Sprintf("log %s (%s): %s %s", ev.Entry.Level, ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		}
	}))
	t.Cleanup(cancel)
	tb.ctx = ctx
	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate("file://"+file),
		chromedp.WaitReady(chromedp.CSS("body")),
		// Let late requests and messages arrive.
		chromedp.Sleep(300*time.Millisecond),
	); err != nil {
		t.Fatalf("load %s: %v", file, err)
	}
	return tb
}

func (tb *tab) count(t *testing.T, sel string) int {
	t.Helper()
	n, err := chromedp.Run(tb.ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)))
	if err != nil {
		t.Fatalf("count %s: %v", sel, err)
	}
	return n
}

func (tb *tab) seen() (requests, problems []string) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]string(nil), tb.requests...), append([]string(nil), tb.problems...)
}

func writeFile(t *testing.T, path string, write func(*os.File) error) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := write(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestHTMLInChromium opens HTML reports in a real headless Chromium: each
// page loads from file:// with no console message, no exception and no
// request but its own; the timeline has one node per phase and per deploy
// stage or wave; screenshots are written as artifacts, and the Chinook
// demo's as docs/report.png when PHASEKIT_SCREENSHOT says so. A page that
// does make a request and log an error shows the checks can fail.
func TestHTMLInChromium(t *testing.T) {
	bin := browser(t)
	dir := os.Getenv(artifactsEnv)
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox, // as root, Chromium refuses to start with its sandbox
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("font-render-hinting", "none"),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	if err := chromedp.Do(browserCtx); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}

	t.Run("control", func(t *testing.T) {
		file := filepath.Join(dir, "control.html")
		writeFile(t, file, func(f *os.File) error {
			_, err := f.WriteString(`<!DOCTYPE html><title>control</title><img src="http://127.0.0.1:9/x.png" alt=""><script>console.error("boom")</script>`)
			return err
		})
		requests, problems := open(t, browserCtx, file).seen()
		if len(requests) < 2 || len(problems) == 0 {
			t.Errorf("the listener missed a request or an error: requests %q, problems %q", requests, problems)
		}
	})

	for _, tc := range []struct {
		name   string
		review func(testing.TB) *report.Review
		docs   bool
	}{
		{"chinook", chinookReview, true},
		{"pagila", pagilaReview, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.review(t)
			file := filepath.Join(dir, tc.name+".html")
			writeFile(t, file, func(f *os.File) error { return r.WriteHTML(f) })
			tb := open(t, browserCtx, file)

			stages := 0
			for _, s := range r.Timeline {
				if s.Kind == phases.StepDeploy {
					stages++
				}
			}
			bakes := 0
			if r.Binding != nil {
				bakes = stages
			}
			for _, c := range []struct {
				sel  string
				want int
			}{
				{"figure.timeline svg .node.phase", len(r.Plan.Phases)},
				{"figure.timeline svg .node.stage", stages},
				{"figure.timeline svg .node.gate", 1},
				{"figure.timeline svg .bake", bakes},
				{"section.phase", len(r.Plan.Phases)},
				{"script, link, img, iframe, object, embed, video, audio", 0},
				// Every table header says what it heads.
				{"th:not([scope])", 0},
			} {
				if got := tb.count(t, c.sel); got != c.want {
					t.Errorf("%s: %d element(s), want %d", c.sel, got, c.want)
				}
			}
			for _, ph := range r.Plan.Phases {
				if got := tb.count(t, fmt.Sprintf(`svg .node.phase[data-kind=%q]`, ph.Kind)); got != 1 {
					t.Errorf("timeline nodes of phase %s: %d, want 1", ph.Kind, got)
				}
			}
			if r.Binding != nil {
				for _, s := range r.Binding.Steps {
					if s.Kind != phases.StepDeploy {
						continue
					}
					if got := tb.count(t, fmt.Sprintf(`svg .node.stage[data-stage=%q][data-wave=%q]`, s.Stage, s.Wave)); got != 1 {
						t.Errorf("timeline nodes of stage %s wave %q: %d, want 1", s.Stage, s.Wave, got)
					}
				}
			}

			full, err := chromedp.Run(tb.ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatal(err)
			}
			writePNG(t, filepath.Join(dir, tc.name+"-full.png"), full)
			// The top of the page, from the title to the end of the
			// table of phases: the docs screenshot.
			bottom, err := chromedp.Run(tb.ctx, chromedp.Evaluate[float64](`document.getElementById('glance-h').parentElement.getBoundingClientRect().bottom + window.scrollY + 28`))
			if err != nil {
				t.Fatal(err)
			}
			shot, err := chromedp.Run(tb.ctx, func(ctx context.Context, tgt *chromedp.Target) ([]byte, error) {
				res, err := cdp.Call(ctx, tgt, page.CaptureScreenshot, page.CaptureScreenshotParams{
					Format:                page.CaptureScreenshotFormatPng,
					CaptureBeyondViewport: ptr(true),
					FromSurface:           ptr(true),
					Clip:                  &page.Viewport{Width: 1280, Height: bottom, Scale: 1},
				})
				if err != nil {
					return nil, err
				}
				return res.Data, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			writePNG(t, filepath.Join(dir, tc.name+".png"), shot)
			if docs := os.Getenv(screenshotEnv); docs != "" && tc.docs {
				if !filepath.IsAbs(docs) {
					docs = filepath.Join("..", docs) // relative to the module root; the test runs in report/
				}
				writePNG(t, docs, shot)
			}

			requests, problems := tb.seen()
			if len(problems) > 0 {
				t.Errorf("the page logged:\n  %s", strings.Join(problems, "\n  "))
			}
			if want := "file://" + file; len(requests) != 1 || requests[0] != want {
				t.Errorf("requests: %q, want only the page itself (%s)", requests, want)
			}
		})
	}
	t.Logf("pages and screenshots in %s", dir)
}

func writePNG(t *testing.T, path string, b []byte) {
	t.Helper()
	if len(b) < 8 || string(b[1:4]) != "PNG" {
		t.Fatalf("%s: not a PNG (%d bytes)", path, len(b))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }
