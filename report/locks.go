package report

import "strings"

// lockModes are PostgreSQL's table lock modes, weakest first, as the plan
// names them (phases.Statement.Lock).
var lockModes = []string{
	"ACCESS SHARE", "ROW SHARE", "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE",
	"SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE",
}

// lockConflicts is the table "Conflicting Lock Modes" of the PostgreSQL
// documentation (13.3.1): for each mode, the modes it conflicts with.
var lockConflicts = map[string][]string{
	"ACCESS SHARE":           {"ACCESS EXCLUSIVE"},
	"ROW SHARE":              {"EXCLUSIVE", "ACCESS EXCLUSIVE"},
	"ROW EXCLUSIVE":          {"SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"},
	"SHARE UPDATE EXCLUSIVE": {"SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"},
	"SHARE":                  {"ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"},
	"SHARE ROW EXCLUSIVE":    {"ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"},
	"EXCLUSIVE":              {"ROW SHARE", "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"},
	"ACCESS EXCLUSIVE":       lockModes,
}

// conflicts reports whether a lock held in mode a makes a request for mode b wait.
func conflicts(a, b string) bool {
	for _, m := range lockConflicts[normLock(a)] {
		if m == normLock(b) {
			return true
		}
	}
	return false
}

func normLock(m string) string { return strings.ToUpper(strings.TrimSpace(m)) }

// lockRank orders lock modes: 0 for none, 1 for ACCESS SHARE, up to 8.
func lockRank(m string) int {
	for i, l := range lockModes {
		if l == normLock(m) {
			return i + 1
		}
	}
	return 0
}

// Blocks says what a table lock makes other sessions wait for, derived from
// the lock mode: what each of them asks for (SELECT takes ACCESS SHARE,
// INSERT/UPDATE/DELETE ROW EXCLUSIVE, VACUUM/ANALYZE/CREATE INDEX
// CONCURRENTLY SHARE UPDATE EXCLUSIVE, ALTER TABLE/DROP ACCESS EXCLUSIVE)
// conflicts with the mode held or not.
type Blocks struct {
	Reads  bool `json:"reads"`
	Writes bool `json:"writes"`
	// Vacuum covers VACUUM, ANALYZE and CREATE INDEX CONCURRENTLY.
	Vacuum bool `json:"vacuum"`
	DDL    bool `json:"ddl"`
}

// BlocksOf derives what a lock mode blocks.
func BlocksOf(mode string) Blocks {
	return Blocks{
		Reads:  conflicts(mode, "ACCESS SHARE"),
		Writes: conflicts(mode, "ROW EXCLUSIVE"),
		Vacuum: conflicts(mode, "SHARE UPDATE EXCLUSIVE"),
		DDL:    conflicts(mode, "ACCESS EXCLUSIVE"),
	}
}

// List names what is blocked, in order: "reads", "writes", "vacuum", "DDL".
func (b Blocks) List() []string {
	var out []string
	if b.Reads {
		out = append(out, "reads")
	}
	if b.Writes {
		out = append(out, "writes")
	}
	if b.Vacuum {
		out = append(out, "vacuum")
	}
	if b.DDL {
		out = append(out, "DDL")
	}
	return out
}

// String is "reads, writes, vacuum, DDL" or "nothing".
func (b Blocks) String() string {
	if l := b.List(); len(l) > 0 {
		return strings.Join(l, ", ")
	}
	return "nothing"
}

// blocksTraffic reports whether the app's own queries wait on the lock.
func (b Blocks) blocksTraffic() bool { return b.Reads || b.Writes }
