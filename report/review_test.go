package report_test

import (
	"bytes"
	"encoding/xml"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/phasekit/phasekit/report"
	"github.com/phasekit/phasekit/schema"
)

func TestBlocksOf(t *testing.T) {
	for _, tc := range []struct {
		mode string
		want string
	}{
		{"none", "nothing"},
		{"ACCESS SHARE", "DDL"},
		{"ROW EXCLUSIVE", "DDL"},
		{"SHARE UPDATE EXCLUSIVE", "vacuum, DDL"},
		{"SHARE", "writes, vacuum, DDL"},
		{"SHARE ROW EXCLUSIVE", "writes, vacuum, DDL"},
		{"EXCLUSIVE", "writes, vacuum, DDL"},
		{"ACCESS EXCLUSIVE", "reads, writes, vacuum, DDL"},
	} {
		if got := report.BlocksOf(tc.mode).String(); got != tc.want {
			t.Errorf("BlocksOf(%s) = %s, want %s", tc.mode, got, tc.want)
		}
	}
}

func TestHighlight(t *testing.T) {
	sql := "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $x$\nBEGIN\n  -- sync\n  NEW.name := coalesce(OLD.name, 'it''s');\n  RETURN NEW;\nEND $x$;\n" +
		`SELECT category.name, "Weird Col", count(*) FROM t WHERE id = $1 AND n > 3.5 /* c */;`
	toks := report.Highlight(sql)
	var back strings.Builder
	classes := map[string][]string{}
	for _, tk := range toks {
		back.WriteString(tk.Text)
		classes[tk.Class] = append(classes[tk.Class], strings.TrimSpace(tk.Text))
	}
	if back.String() != sql {
		t.Fatalf("tokens do not give the input back:\n%q\n%q", back.String(), sql)
	}
	has := func(class, text string) bool {
		for _, s := range classes[class] {
			if strings.Contains(s, text) {
				return true
			}
		}
		return false
	}
	for _, c := range []struct{ class, text string }{
		{report.TokKeyword, "CREATE"}, {report.TokKeyword, "RETURNS"},
		{report.TokKeyword, "BEGIN"}, // inside the dollar-quoted body
		{report.TokKeyword, "RETURN"},
		{report.TokString, "$x$"}, {report.TokString, "'it''s'"},
		{report.TokComment, "-- sync"}, {report.TokComment, "/* c */"},
		{report.TokFunction, "coalesce"}, {report.TokFunction, "count"},
		{report.TokQuoted, `"Weird Col"`}, {report.TokParam, "$1"},
		{report.TokNumber, "3.5"}, {report.TokOperator, ":="},
	} {
		if !has(c.class, c.text) {
			t.Errorf("%q is not in class %q; classes: %q", c.text, c.class, classes)
		}
	}
	// A keyword used as a column name is not highlighted as one.
	if has(report.TokKeyword, "name") {
		t.Errorf("category.name highlighted as a keyword: %q", classes[report.TokKeyword])
	}
	// Text the scanner rejects comes back whole.
	if toks := report.Highlight("SELECT 'unterminated"); len(toks) != 1 || toks[0].Text != "SELECT 'unterminated" {
		t.Errorf("unscannable input: %q", toks)
	}
}

// sized returns the Chinook snapshot with one table's row count set, as the
// live catalogue of a big production database would have it.
func sized(t *testing.T, table string, rows int64) *report.Catalogue {
	t.Helper()
	s := loadSnapshot(t, filepath.Join("..", "phases", "testdata", "chinook.snapshot.json"))
	tb := s.Tables[table]
	tb.RowEstimate = rows
	tb.SizeBytes = rows * 120
	return &report.Catalogue{Source: "a big Chinook", Snapshot: s}
}

func chinookSnapshot(t *testing.T) *schema.Snapshot {
	return loadSnapshot(t, filepath.Join("..", "phases", "testdata", "chinook.snapshot.json"))
}

func risk(r *report.Review, title string) *report.Risk {
	for i := range r.Risks {
		if strings.HasPrefix(r.Risks[i].Title, title) {
			return &r.Risks[i]
		}
	}
	return nil
}

// TestEstimates checks durations, lock hold times and the risks they raise,
// on plans of the catalogue against tables of production size.
func TestEstimates(t *testing.T) {
	rates := report.BenchRates

	t.Run("backfill of a large table", func(t *testing.T) {
		p, _ := plan(t, chinookSnapshot(t), "m.sql", "ALTER TABLE track ALTER COLUMN milliseconds TYPE bigint;", false)
		// Over an hour at the benchmark's backfill rate: a high risk.
		r := report.Build(p, report.Options{Catalogue: sized(t, "public.track", 1_000_000_000)})
		bf := r.Phases[2].Backfills[0]
		want := time.Duration(1_000_000_000 / rates.Backfill.RowsPerSecond * float64(time.Second))
		if !bf.Duration.Known || bf.Duration.Duration != want {
			t.Errorf("backfill estimate %+v, want %s", bf.Duration, want)
		}
		if k := risk(r, "Long backfill"); k == nil || k.Level != report.RiskHigh || k.Phase != 3 {
			t.Errorf("long backfill risk: %+v; risks %+v", k, r.Risks)
		}
		if k := risk(r, "Large table"); k == nil || !strings.Contains(k.Detail, "1,000,000,000 rows") {
			t.Errorf("large table risk: %+v", k)
		}
		for _, ph := range r.Phases {
			for _, s := range ph.Statements {
				if s.Cost != report.CostCatalog && s.Cost != report.CostScan {
					t.Errorf("%s statement %d (%s) costs %s: the plan rewrites nothing", ph.Kind, s.N, s.SQL, s.Cost)
				}
			}
		}
	})

	t.Run("not null through a validated check", func(t *testing.T) {
		p, _ := plan(t, chinookSnapshot(t), "m.sql", "ALTER TABLE customer ALTER COLUMN company SET NOT NULL;", false)
		r := report.Build(p, report.Options{Catalogue: sized(t, "public.customer", 100_000_000)})
		var costs []report.Cost
		var validate report.StatementReview
		for _, s := range r.Phases[len(r.Phases)-1].Statements {
			costs = append(costs, s.Cost)
			if s.Cost == report.CostScan {
				validate = s
			}
		}
		if got := costsString(costs); got != "catalog,scan,catalog,catalog" {
			t.Errorf("contract costs %s, want catalog,scan,catalog,catalog (SET NOT NULL uses the validated check)", got)
		}
		// VALIDATE runs in its own transaction under SHARE UPDATE
		// EXCLUSIVE: long, but the app does not wait for it.
		if validate.Blocks.Reads || validate.Blocks.Writes || validate.TxSize != 1 {
			t.Errorf("VALIDATE: %+v", validate)
		}
		if k := risk(r, "Long lock"); k != nil {
			t.Errorf("unexpected %+v", k)
		}
	})

	t.Run("a long UPDATE under ACCESS EXCLUSIVE", func(t *testing.T) {
		p, _ := plan(t, chinookSnapshot(t), "m.sql", "SET lock_timeout = '2s'; UPDATE customer SET country = 'X';", false)
		for _, tc := range []struct {
			rows  int64
			level string
		}{{1_000_000, report.RiskWarn}, {100_000_000, report.RiskHigh}} {
			r := report.Build(p, report.Options{Catalogue: sized(t, "public.customer", tc.rows)})
			s := r.Phases[0].Statements[len(r.Phases[0].Statements)-1]
			if s.Cost != report.CostUpdate || !s.Hold.Known || s.Hold.Duration < time.Second {
				t.Errorf("%d rows: UPDATE statement %+v", tc.rows, s)
			}
			if r.Hold != s.Hold {
				t.Errorf("%d rows: longest app wait %v, want the UPDATE's %v", tc.rows, r.Hold, s.Hold)
			}
			if k := risk(r, "Long lock"); k == nil || k.Level != tc.level {
				t.Errorf("%d rows: long lock risk %+v, want level %s", tc.rows, k, tc.level)
			}
		}
	})

	t.Run("index built concurrently", func(t *testing.T) {
		p, _ := plan(t, chinookSnapshot(t), "m.sql", "CREATE INDEX ON track (name);", false)
		r := report.Build(p, report.Options{Catalogue: sized(t, "public.track", 1_000_000)})
		s := r.Phases[0].Statements[0]
		want := time.Duration(2 * 1_000_000 / rates.Index.RowsPerSecond * float64(time.Second))
		if s.Transactional || s.Cost != report.CostIndex || s.Duration.Duration != want {
			t.Errorf("CREATE INDEX CONCURRENTLY: %+v, want two passes: %s", s, want)
		}
		if k := risk(r, "Runs outside a transaction"); k == nil {
			t.Errorf("no risk for the statement outside a transaction: %+v", r.Risks)
		}
	})

	t.Run("sizes unknown", func(t *testing.T) {
		p, _ := plan(t, chinookSnapshot(t), "m.sql", "ALTER TABLE track ALTER COLUMN milliseconds TYPE bigint;", false)
		r := report.Build(p, report.Options{})
		if r.Database.Known || risk(r, "Durations not estimated") == nil {
			t.Errorf("without a catalogue: database time %+v, risks %+v", r.Database, r.Risks)
		}
	})

	t.Run("table without a key", func(t *testing.T) {
		snap := chinookSnapshot(t)
		p, _ := plan(t, snap, "m.sql", "ALTER TABLE customer RENAME COLUMN email TO email_address;", false)
		live := sized(t, "public.customer", 59)
		live.Snapshot.Tables["public.customer"].Constraints = nil
		live.Snapshot.Tables["public.customer"].Indexes = nil
		r := report.Build(p, report.Options{Catalogue: live})
		if k := risk(r, "No key"); k == nil || k.Level != report.RiskHigh {
			t.Errorf("no key risk: %+v", k)
		}
		if k := risk(r, "Live tables differ"); k == nil {
			t.Errorf("no drift warning: %+v", r.Risks)
		}
	})
}

func costsString(cs []report.Cost) string {
	var s []string
	for _, c := range cs {
		s = append(s, string(c))
	}
	return strings.Join(s, ",")
}

// TestPagilaViewsAndTriggers: retyping film.length drops and recreates the
// two views that read it in contract; film's own triggers are a risk for
// the backfill.
func TestPagilaViewsAndTriggers(t *testing.T) {
	r := pagilaReview(t)
	k := risk(r, "Dependent views")
	if k == nil || k.Phase != len(r.Phases) || !strings.Contains(k.Detail, "public.film_list, public.nicer_but_slower_film_list") {
		t.Errorf("dependent views risk: %+v", k)
	}
	if k := risk(r, "Table has its own triggers"); k == nil || !strings.Contains(k.Detail, "film_fulltext_trigger, last_updated") {
		t.Errorf("trigger risk: %+v", k)
	}
	for _, name := range []string{"public.film_list", "public.nicer_but_slower_film_list"} {
		if ti := tableInfo(r, name); !ti.View {
			t.Errorf("%s not marked as a view: %+v", name, ti)
		}
	}
	if len(r.Gate) == 0 || !strings.Contains(r.Gate[0], "N retired") {
		t.Errorf("gate without a pipeline: %q", r.Gate)
	}
}

// TestGateFromPipeline lists the gate's checks from the binding, the
// backfill's verify query in place of "backfill verified".
func TestGateFromPipeline(t *testing.T) {
	r := chinookReview(t)
	want := []string{
		"v42 baked in every prod wave for its bake time (one-box 2h, us-east-1 1h, us-west-2 1h30m)",
		"no alarm breached",
		"no v41 client left (application_name checkout/v41)",
		"backfill of public.customer verified: `SELECT count(*) FROM public.customer WHERE email_address IS DISTINCT FROM (email)` returns 0",
		"phasekit verify passed for this plan (every required cell, shadow read and zeta pairing)",
	}
	if strings.Join(r.Gate, "\n") != strings.Join(want, "\n") {
		t.Errorf("gate:\n%s\nwant:\n%s", strings.Join(r.Gate, "\n"), strings.Join(want, "\n"))
	}
}

func TestVerifyForAnotherPlan(t *testing.T) {
	r := chinookReview(t)
	r.Verify.Plan = strings.Repeat("f", 64)
	r = report.Build(r.Plan, report.Options{Verify: r.Verify, Binding: r.Binding})
	if k := risk(r, "Verify result is for another plan"); k == nil || k.Level != report.RiskHigh {
		t.Errorf("risk: %+v", k)
	}
	var b bytes.Buffer
	if err := r.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "⚠️ This verify result is for plan `ffffffffffff`") {
		t.Errorf("markdown does not warn:\n%s", b.String())
	}
}

// svgNodes parses the timeline SVG and counts its nodes by class.
func svgNodes(t *testing.T, svg string) map[string]int {
	t.Helper()
	n := map[string]int{}
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("timeline SVG is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			for _, a := range se.Attr {
				if a.Name.Local == "class" {
					n[a.Value]++
				}
			}
		}
	}
	return n
}

func TestTimelineSVG(t *testing.T) {
	// Bound to the shipped pipeline: 5 stages, prod in 3 waves.
	n := svgNodes(t, string(report.TimelineSVG(chinookReview(t))))
	if n["node phase"] != 4 || n["node stage"] != 7 || n["node gate"] != 1 || n["bake"] != 7 || n["stage-group"] != 1 {
		t.Errorf("bound timeline nodes: %v", n)
	}
	// Without a pipeline: one deploy of N+1 between the phases and contract.
	n = svgNodes(t, string(report.TimelineSVG(pagilaReview(t))))
	if n["node phase"] != 4 || n["node stage"] != 1 || n["node gate"] != 1 || n["bake"] != 0 {
		t.Errorf("unbound timeline nodes: %v", n)
	}
}

// TestHTMLSelfContained: nothing in the page can make a request, and every
// table header has a scope.
func TestHTMLSelfContained(t *testing.T) {
	for _, r := range []*report.Review{chinookReview(t), pagilaReview(t)} {
		var b bytes.Buffer
		if err := r.WriteHTML(&b); err != nil {
			t.Fatal(err)
		}
		page := b.String()
		// The SVG namespace is a name, not a request.
		stripped := strings.ReplaceAll(page, `xmlns="http://www.w3.org/2000/svg"`, "")
		for _, bad := range []string{"<script", "<link", "<img", "<iframe", "@import", "http://", "https://", "src=", "@font-face"} {
			if strings.Contains(stripped, bad) {
				t.Errorf("%s: page contains %q", r.Title, bad)
			}
		}
		if m := regexp.MustCompile(`url\((?:[^#)][^)]*)\)`).FindString(stripped); m != "" {
			t.Errorf("%s: page refers to %s", r.Title, m)
		}
		if m := regexp.MustCompile(`<th(?:\s[^>]*)?>`).FindAllString(page, -1); len(m) == 0 {
			t.Errorf("%s: no table headers", r.Title)
		} else {
			for _, th := range m {
				if !strings.Contains(th, "scope=") {
					t.Errorf("%s: %s without scope", r.Title, th)
				}
			}
		}
		if !strings.Contains(page, "@media print") {
			t.Errorf("%s: no print styles", r.Title)
		}
	}
}
