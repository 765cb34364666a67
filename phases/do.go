package phases

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/schema"
)

// planObservedDo plans a DO block whose body runs DDL (Mattermost writes
// every conditional ALTER this way) from what the replay saw it do on the
// scratch copy, which holds the schema the plan is for. When all it did is
// what N cannot notice, and what the catalogue itself plans as one expand
// step run as written (tables created, columns added that N's writes can
// leave out, a type changed in the catalogue only, a default set, NOT NULL
// dropped, comments), the block runs as written in expand. Anything else,
// or no observation: refused, naming the statements, as before.
func planObservedDo(obs *Observed, c change.Change) (*fragment, error) {
	if obs == nil || obs.Before == nil || obs.After == nil {
		return nil, &PlanError{Pos: c.Pos, Msg: c.Reason, Observed: true}
	}
	did, why := doEffect(obs.Before, obs.After, obs.Rewritten)
	if why != "" {
		hint := ": " + change.DoRewriteHint
		return nil, &PlanError{Pos: c.Pos, Msg: fmt.Sprintf("%s; on the scratch copy it %s%s", strings.TrimSuffix(c.Reason, hint), why, hint)}
	}
	f := newFragment()
	summary := "did nothing to the schema"
	if len(did) > 0 {
		summary = strings.Join(did, "; ")
	}
	f.add(Expand, Statement{SQL: c.SQL, Lock: LockAccessExclusive, Transactional: true, Table: c.Table,
		Why: "DO block, run as written: on the scratch copy of this schema it " + summary + ", which N does not notice"})
	// Its inverse cannot be derived from the block.
	f.irreversible[Expand] = true
	return f, nil
}

// doEffect lists what a statement did between two snapshots, or says why
// that is not harmless to N ("" when it is).
func doEffect(before, after *schema.Snapshot, rewritten []string) (did []string, why string) {
	if len(rewritten) > 0 {
		sort.Strings(rewritten)
		return nil, "rewrote " + strings.Join(rewritten, ", ")
	}
	for name := range before.Tables {
		if _, ok := after.Tables[name]; !ok {
			return nil, "dropped or renamed table " + name
		}
	}
	for _, name := range sortedTableNames(after) {
		ta := after.Tables[name]
		tb, ok := before.Tables[name]
		if !ok {
			did = append(did, "created table "+name)
			continue
		}
		d, w := tableEffect(tb, ta)
		if w != "" {
			return nil, w
		}
		did = append(did, d...)
	}
	if !reflect.DeepEqual(viewDefs(before), viewDefs(after)) {
		return nil, "changed a view"
	}
	if !reflect.DeepEqual(before.Enums, after.Enums) {
		return nil, "changed an enum"
	}
	if !reflect.DeepEqual(before.Functions, after.Functions) {
		return nil, "changed a function"
	}
	return did, ""
}

func sortedTableNames(s *schema.Snapshot) []string {
	names := make([]string, 0, len(s.Tables))
	for n := range s.Tables {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func viewDefs(s *schema.Snapshot) map[string]string {
	out := map[string]string{}
	for k, v := range s.Views {
		out[k] = fmt.Sprintf("%v %s %v %v %v", v.Materialized, v.Definition, v.Columns, v.Options, v.Indexes)
	}
	return out
}

// tableEffect compares one table before and after.
func tableEffect(before, after *schema.Table) (did []string, why string) {
	tn := after.QName()
	old := map[string]schema.Column{}
	for _, c := range before.Columns {
		old[c.Name] = c
	}
	seen := map[string]bool{}
	for _, c := range after.Columns {
		seen[c.Name] = true
		o, ok := old[c.Name]
		if !ok {
			if c.NotNull && c.Default == "" && c.Identity == "" && c.Generated == "" {
				return nil, fmt.Sprintf("added column %s.%s NOT NULL without a default, which N's inserts leave out", tn, c.Name)
			}
			did = append(did, fmt.Sprintf("added column %s.%s %s", tn, c.Name, c.Type))
			continue
		}
		if o.NotNull != c.NotNull && c.NotNull {
			return nil, fmt.Sprintf("set %s.%s NOT NULL, which N may still write NULL into", tn, c.Name)
		}
		n := c
		n.Position, o.Position = 0, 0
		n.Type, n.Default, n.NotNull, n.Comment = o.Type, o.Default, o.NotNull, o.Comment
		if n != o {
			return nil, fmt.Sprintf("changed column %s.%s beyond its type, default, NOT NULL or comment", tn, c.Name)
		}
		o = old[c.Name]
		if o.Type != c.Type {
			did = append(did, fmt.Sprintf("changed %s.%s from %s to %s in the catalogue only", tn, c.Name, o.Type, c.Type))
		}
		if o.Default != c.Default {
			did = append(did, fmt.Sprintf("set the default of %s.%s", tn, c.Name))
		}
		if o.NotNull != c.NotNull {
			did = append(did, fmt.Sprintf("dropped NOT NULL on %s.%s", tn, c.Name))
		}
	}
	for _, c := range before.Columns {
		if !seen[c.Name] {
			return nil, fmt.Sprintf("dropped column %s.%s", tn, c.Name)
		}
	}
	if !reflect.DeepEqual(before.Constraints, after.Constraints) {
		return nil, "changed a constraint of " + tn
	}
	if !reflect.DeepEqual(before.Indexes, after.Indexes) {
		return nil, "built or dropped an index of " + tn + " (inside a DO block it cannot be built CONCURRENTLY)"
	}
	if !reflect.DeepEqual(before.Triggers, after.Triggers) {
		return nil, "changed a trigger of " + tn
	}
	if before.Partitioned != after.Partitioned || before.PartitionOf != after.PartitionOf {
		return nil, "changed the partitioning of " + tn
	}
	return did, ""
}
