package phases

// CheckResult is what the plan check found (package plancheck): the plan
// applied through every phase and purge on a scratch copy of the schema,
// compared with the file applied as written on another, and rolled back from
// every phase boundary on a third. It is a record of the plan, like Binding,
// and not covered by Hash.
type CheckResult struct {
	// Checked is false when no scratch PostgreSQL could be had; Reason
	// says why and the plan is "not checked".
	Checked bool   `json:"checked"`
	Reason  string `json:"reason,omitempty"`
	// Server names the PostgreSQL the check ran on, and where.
	Server string `json:"server,omitempty"`
	// Millis is how long the check took, replay included.
	Millis int64 `json:"millis,omitempty"`
	// Equal is true when the plan's end state (catalogue and rows) equals
	// the file's.
	Equal       bool         `json:"equal"`
	Differences []Difference `json:"differences,omitempty"`
	// Error is set when PostgreSQL refused a step of the plan.
	Error string `json:"error,omitempty"`
	// Rollbacks are the rollback checks, one per phase boundary.
	Rollbacks []RollbackCheck `json:"rollbacks,omitempty"`
	// Limits are differences the plan states rather than fails on: a column
	// that ends at another position than the file leaves it.
	Limits []string `json:"limits,omitempty"`
	// Unstable names the tables whose rows were compared without the
	// columns the file itself fills differently each time it runs (now(),
	// random()), and those columns on their NULLs and, where the file's
	// runs agree on it, on whether every value is distinct or all are one.
	Unstable []string `json:"unstable,omitempty"`
	// Accepted is set when the user accepted differences (plan
	// --accept-differences); the plan then still carries them.
	Accepted bool `json:"accepted,omitempty"`
}

// Difference is one object that differs between two databases.
type Difference struct {
	Object string `json:"object"`
	// Want is its definition where it should be (the file's end state, or
	// the start for a rollback), Got where the plan left it; "" is absent.
	Want string `json:"want"`
	Got  string `json:"got"`
}

// RollbackCheck is the rollback of every phase up to and including After.
type RollbackCheck struct {
	After       Kind         `json:"after"`
	Equal       bool         `json:"equal"`
	Differences []Difference `json:"differences,omitempty"`
	// Irreversible: a phase up to After is one the plan says rollback
	// cannot fully undo (a data statement, a drop without archive, a
	// statement whose inverse is unknown): its differences, or the error
	// its forced rollback stops at, are reported, not failed.
	Irreversible bool `json:"irreversible,omitempty"`
	// Error is set when the apply or the rollback itself failed.
	Error string `json:"error,omitempty"`
}

// OK reports whether the check passed: the end state equals the file's and
// every rollback returns the start.
func (r *CheckResult) OK() bool {
	if r == nil || !r.Checked || !r.Equal || r.Error != "" {
		return false
	}
	for _, rb := range r.Rollbacks {
		// A phase the plan says rollback cannot fully undo may leave
		// differences, or refuse (the rows N+1 wrote do not fit the old
		// shape): reported, not failed.
		if !rb.Irreversible && (rb.Error != "" || !rb.Equal) {
			return false
		}
	}
	return true
}
