package change

import (
	"fmt"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
)

// printer prints the statements and definitions classify derives from a
// statement: each ALTER TABLE subcommand and each dropped object as a
// statement of its own (SQL, Replay), an index's or constraint's definition
// (Definition). Planning, replay and the data checks use them; the lint rules
// read none of them, so lint skips them (skip): deparsing them was a quarter
// of lint's time. The values the rules read (types, defaults, expressions,
// names) are printed either way.
type printer struct{ skip bool }

// stmt is deparseStmt(n()), or "" when skipping: n builds the tree to print
// only when it is printed.
func (p printer) stmt(n func() *pg.Node) string {
	if p.skip {
		return ""
	}
	return deparseStmt(n())
}

// classify turns one parsed statement into changes: one per ALTER TABLE
// subcommand or per dropped object, so each can be planned on its own.
func classify(n *pg.Node, text string, p printer) []Change {
	switch {
	case n.GetRenameStmt() != nil:
		return []Change{classifyRename(n.GetRenameStmt())}
	case n.GetAlterTableStmt() != nil:
		return classifyAlterTable(n.GetAlterTableStmt(), p)
	case n.GetIndexStmt() != nil:
		return []Change{classifyCreateIndex(n.GetIndexStmt(), p)}
	case n.GetDropStmt() != nil:
		return classifyDrop(n.GetDropStmt(), p)
	case n.GetAlterEnumStmt() != nil:
		return []Change{classifyAlterEnum(n.GetAlterEnumStmt())}
	case n.GetVariableSetStmt() != nil:
		v := n.GetVariableSetStmt()
		return []Change{{Kind: SessionSetting, Setting: v.Name, SettingValue: deparseArgs(v.Args)}}
	case n.GetTransactionStmt() != nil:
		return []Change{{Kind: SessionSetting, Setting: "transaction", Reason: "transaction control; phasekit decides each phase's transactions"}}
	case n.GetCreateStmt() != nil:
		return []Change{{Kind: CreateTable, Table: rangeVarName(n.GetCreateStmt().Relation), Reason: "creates a new table: no running code uses it yet"}}
	case n.GetInsertStmt() != nil:
		return []Change{dataChange(rangeVarName(n.GetInsertStmt().Relation), n, "inserts rows")}
	case n.GetUpdateStmt() != nil:
		return []Change{dataChange(rangeVarName(n.GetUpdateStmt().Relation), n, "updates rows")}
	case n.GetDeleteStmt() != nil:
		return []Change{dataChange(rangeVarName(n.GetDeleteStmt().Relation), n, "deletes rows")}
	case n.GetMergeStmt() != nil:
		return []Change{dataChange(rangeVarName(n.GetMergeStmt().Relation), n, "merges rows")}
	case n.GetTruncateStmt() != nil:
		c := dataChange("", n, "empties tables")
		if rels := n.GetTruncateStmt().Relations; len(rels) > 0 {
			c.Table = rangeVarName(rels[0].GetRangeVar())
		}
		return []Change{c}
	case n.GetSelectStmt() != nil && n.GetSelectStmt().IntoClause == nil:
		return []Change{dataChange("", n, "runs a query (e.g. setval or a function call)")}
	case n.GetDoStmt() != nil:
		return []Change{classifyDo(n.GetDoStmt())}
	case n.GetReindexStmt() != nil:
		return []Change{classifyReindex(n.GetReindexStmt(), p)}
	case n.GetVacuumStmt() != nil && vacuumFull(n.GetVacuumStmt()):
		return []Change{{Kind: Unknown, Reason: "VACUUM FULL rewrites the table under ACCESS EXCLUSIVE: reads and writes wait until it ends (pg_repack does the same online)"}}
	}
	for _, s := range safeStatements {
		if s.match(n) {
			c := Change{Kind: Safe, Reason: s.reason, Aside: asideStatement(n)}
			c.ObjectType, c.Object, c.Table = createdObject(n)
			return []Change{c}
		}
	}
	return []Change{{Kind: Unknown, Reason: fmt.Sprintf("%s is not in the change catalogue", stmtName(n))}}
}

var safeStatements = []struct {
	match  func(*pg.Node) bool
	reason string
}{
	{func(n *pg.Node) bool { return n.GetCreateSeqStmt() != nil }, "creates a new sequence"},
	{func(n *pg.Node) bool { return n.GetCreateEnumStmt() != nil }, "creates a new enum type"},
	{func(n *pg.Node) bool { return n.GetCompositeTypeStmt() != nil }, "creates a new composite type"},
	{func(n *pg.Node) bool { return n.GetCreateDomainStmt() != nil }, "creates a new domain"},
	{func(n *pg.Node) bool { return n.GetCreateFunctionStmt() != nil }, "creates or replaces a function"},
	{func(n *pg.Node) bool { return n.GetCreateSchemaStmt() != nil }, "creates a new schema"},
	{func(n *pg.Node) bool { return n.GetCreateExtensionStmt() != nil }, "creates an extension"},
	{func(n *pg.Node) bool { return n.GetCommentStmt() != nil }, "sets a comment"},
	{func(n *pg.Node) bool { return n.GetGrantStmt() != nil }, "grants or revokes privileges"},
	{func(n *pg.Node) bool { return n.GetViewStmt() != nil && !n.GetViewStmt().Replace }, "creates a new view"},
	{func(n *pg.Node) bool { return n.GetCreateTableAsStmt() != nil }, "creates a new table or materialized view from a query"},
	{func(n *pg.Node) bool { return n.GetCreateTrigStmt() != nil }, "creates a trigger"},
	{func(n *pg.Node) bool { return n.GetViewStmt() != nil && n.GetViewStmt().Replace },
		"replaces a view: PostgreSQL refuses a new definition that drops or retypes a column N reads, and takes a short lock"},
	{func(n *pg.Node) bool { return n.GetCreateStatsStmt() != nil }, "creates extended statistics: planner input only"},
	{func(n *pg.Node) bool { return n.GetAlterSeqStmt() != nil }, "changes a sequence's options: no table lock"},
	{func(n *pg.Node) bool { return n.GetAlterDefaultPrivilegesStmt() != nil }, "changes default privileges of future objects"},
	{func(n *pg.Node) bool { return n.GetCreatePolicyStmt() != nil || n.GetAlterPolicyStmt() != nil },
		"creates or changes a row level security policy: it applies only where row level security is on"},
	{func(n *pg.Node) bool { return n.GetVacuumStmt() != nil && !vacuumFull(n.GetVacuumStmt()) }, VacuumReason},
	{func(n *pg.Node) bool {
		return n.GetCreateCastStmt() != nil || n.GetCreateOpClassStmt() != nil || n.GetCreateOpFamilyStmt() != nil
	},
		"creates a cast or operator class: nothing existing changes"},
	{func(n *pg.Node) bool { return n.GetDefineStmt() != nil }, "creates an aggregate, operator, collation or type"},
	{func(n *pg.Node) bool { return n.GetCreateRangeStmt() != nil }, "creates a new range type"},
	{func(n *pg.Node) bool { return n.GetAlterFunctionStmt() != nil }, "changes a function's attributes (volatility, cost, settings)"},
	{func(n *pg.Node) bool { return n.GetAlterOwnerStmt() != nil }, "changes an owner"},
	{func(n *pg.Node) bool { return n.GetAlterExtensionStmt() != nil }, "updates an extension"},
	{func(n *pg.Node) bool { return n.GetCreateEventTrigStmt() != nil }, "creates an event trigger"},
	{func(n *pg.Node) bool {
		return n.GetAlterDomainStmt() != nil && n.GetAlterDomainStmt().Subtype != "C" && n.GetAlterDomainStmt().Subtype != "O"
	},
		"changes a domain's default, NOT NULL or drops one of its constraints"},
	{func(n *pg.Node) bool { return n.GetAlterStatsStmt() != nil }, "changes extended statistics"},
	{func(n *pg.Node) bool { return n.GetRefreshMatViewStmt() != nil && n.GetRefreshMatViewStmt().Concurrent },
		"refreshes a materialized view CONCURRENTLY: reads go on"},
}

// createdObject names what a CREATE statement creates, so its rollback can
// drop it: ObjectType as in DROP ("SEQUENCE", "FUNCTION"...), the name
// ("schema.name"; a function with its argument types; a trigger or policy
// as "schema.table.name" with its table). "" when it is not a CREATE.
func createdObject(n *pg.Node) (typ, name, table string) {
	switch {
	case n.GetCreateSeqStmt() != nil:
		return "SEQUENCE", rangeVarName(n.GetCreateSeqStmt().Sequence), ""
	case n.GetCreateEnumStmt() != nil:
		return "TYPE", qualifiedFromList(n.GetCreateEnumStmt().TypeName), ""
	case n.GetCompositeTypeStmt() != nil:
		return "TYPE", rangeVarName(n.GetCompositeTypeStmt().Typevar), ""
	case n.GetCreateRangeStmt() != nil:
		return "TYPE", qualifiedFromList(n.GetCreateRangeStmt().TypeName), ""
	case n.GetCreateDomainStmt() != nil:
		return "DOMAIN", qualifiedFromList(n.GetCreateDomainStmt().Domainname), ""
	case n.GetCreateFunctionStmt() != nil:
		f := n.GetCreateFunctionStmt()
		var args []string
		for _, p := range f.Parameters {
			fp := p.GetFunctionParameter()
			if fp == nil || fp.Mode == pg.FunctionParameterMode_FUNC_PARAM_OUT || fp.Mode == pg.FunctionParameterMode_FUNC_PARAM_TABLE {
				continue
			}
			args = append(args, deparseType(fp.ArgType))
		}
		typ = "FUNCTION"
		if f.IsProcedure {
			typ = "PROCEDURE"
		}
		return typ, qualifiedFromList(f.Funcname) + "(" + strings.Join(args, ", ") + ")", ""
	case n.GetViewStmt() != nil:
		return "VIEW", rangeVarName(n.GetViewStmt().View), ""
	case n.GetCreateTableAsStmt() != nil:
		ct := n.GetCreateTableAsStmt()
		if ct.Objtype == pg.ObjectType_OBJECT_MATVIEW {
			return "MATERIALIZED VIEW", rangeVarName(ct.Into.GetRel()), ""
		}
		return "TABLE", rangeVarName(ct.Into.GetRel()), ""
	case n.GetCreateTrigStmt() != nil:
		t := rangeVarName(n.GetCreateTrigStmt().Relation)
		return "TRIGGER", t + "." + n.GetCreateTrigStmt().Trigname, t
	case n.GetCreateSchemaStmt() != nil:
		return "SCHEMA", n.GetCreateSchemaStmt().Schemaname, ""
	case n.GetCreateExtensionStmt() != nil:
		return "EXTENSION", n.GetCreateExtensionStmt().Extname, ""
	case n.GetCreatePolicyStmt() != nil:
		t := rangeVarName(n.GetCreatePolicyStmt().Table)
		return "POLICY", t + "." + n.GetCreatePolicyStmt().PolicyName, t
	case n.GetCreateStatsStmt() != nil:
		return "STATISTICS", qualifiedFromList(n.GetCreateStatsStmt().Defnames), ""
	case n.GetCommentStmt() != nil:
		// COMMENT ON COLUMN t.c / ON TABLE t: what it comments on, so the
		// planner keeps it after a change to that column or table.
		cm := n.GetCommentStmt()
		items := names(cm.Object.GetList().GetItems())
		switch cm.Objtype {
		case pg.ObjectType_OBJECT_COLUMN:
			if len(items) >= 2 {
				table := qualifiedFromList(cm.Object.GetList().GetItems()[:len(items)-1])
				return "COMMENT ON COLUMN", table + "." + items[len(items)-1], table
			}
		case pg.ObjectType_OBJECT_TABLE, pg.ObjectType_OBJECT_VIEW, pg.ObjectType_OBJECT_MATVIEW:
			t := qualifiedFromList(cm.Object.GetList().GetItems())
			return "COMMENT ON " + strings.ToUpper(objectName(cm.Objtype)), t, t
		}
	}
	return "", "", ""
}

// VacuumReason is why a plain VACUUM or ANALYZE is safe; it takes SHARE
// UPDATE EXCLUSIVE, which reads and writes pass.
const VacuumReason = "VACUUM or ANALYZE: maintenance, no schema change"

// vacuumFull tells VACUUM FULL, which rewrites the table under ACCESS
// EXCLUSIVE: not the maintenance plain VACUUM is.
func vacuumFull(v *pg.VacuumStmt) bool {
	for _, o := range v.Options {
		if d := o.GetDefElem(); d != nil && d.Defname == "full" {
			return true
		}
	}
	return false
}

// asideStatement tells the safe statements that change nothing an app
// version relies on, so they may run in any phase.
func asideStatement(n *pg.Node) bool {
	return n.GetCommentStmt() != nil || n.GetGrantStmt() != nil || n.GetCreateStatsStmt() != nil ||
		n.GetAlterStatsStmt() != nil || n.GetVacuumStmt() != nil && !vacuumFull(n.GetVacuumStmt()) || n.GetAlterOwnerStmt() != nil ||
		n.GetAlterDefaultPrivilegesStmt() != nil || n.GetAlterSeqStmt() != nil
}

// dataChange is a data statement on table (its target, "" when none).
// Columns are the columns it writes (SET targets, INSERT's column list) and
// the ones it reads.
func dataChange(table string, n *pg.Node, what string) Change {
	c := Change{Kind: Data, Table: table, Reason: what}
	if table == "" {
		return c
	}
	var targets []*pg.Node
	switch {
	case n.GetUpdateStmt() != nil:
		targets = n.GetUpdateStmt().TargetList
		for _, t := range targets {
			if rt := t.GetResTarget(); rt != nil && rt.Val.GetSetToDefault() != nil {
				c.TakesDefaults = true
			}
		}
	case n.GetInsertStmt() != nil:
		targets = n.GetInsertStmt().Cols
		c.TakesDefaults = true
	}
	seen := map[string]bool{}
	for _, t := range targets {
		if rt := t.GetResTarget(); rt != nil && rt.Name != "" && !seen[rt.Name] {
			seen[rt.Name] = true
			c.Columns = append(c.Columns, rt.Name)
		}
	}
	for _, col := range columnRefs(n) {
		if !seen[col] {
			seen[col] = true
			c.Columns = append(c.Columns, col)
		}
	}
	return c
}

// classifyReindex: REINDEX CONCURRENTLY is safe as written; a plain REINDEX
// is planned CONCURRENTLY (same indexes after, writes go on meanwhile).
func classifyReindex(r *pg.ReindexStmt, p printer) Change {
	obj := ""
	if r.Relation != nil {
		obj = rangeVarName(r.Relation)
	} else if r.Name != "" {
		obj = r.Name
	}
	kind := strings.TrimPrefix(r.Kind.String(), "REINDEX_OBJECT_")
	c := Change{Kind: Reindex, Object: obj, ObjectType: kind}
	for _, p := range r.Params {
		if d := p.GetDefElem(); d != nil && d.Defname == "concurrently" {
			c.Concurrently = true
		}
	}
	if kind == "TABLE" {
		c.Table = obj
	}
	c.Definition = p.stmt(func() *pg.Node {
		cp := proto.Clone(r).(*pg.ReindexStmt)
		if !c.Concurrently {
			cp.Params = append(cp.Params, &pg.Node{Node: &pg.Node_DefElem{DefElem: &pg.DefElem{Defname: "concurrently"}}})
		}
		return &pg.Node{Node: &pg.Node_ReindexStmt{ReindexStmt: cp}}
	})
	if kind != "INDEX" && kind != "TABLE" {
		return Change{Kind: Unknown, Object: obj, ObjectType: kind, Reason: "REINDEX " + kind + " rebuilds every index of a schema or database: run it outside the migration, CONCURRENTLY"}
	}
	return c
}

func stmtName(n *pg.Node) string {
	// The oneof wrapper's type name is the node type, e.g. *pg_query.Node_UpdateStmt.
	name := fmt.Sprintf("%T", n.Node)
	name = strings.TrimPrefix(name, "*pg_query.Node_")
	return name
}

func classifyRename(r *pg.RenameStmt) Change {
	table := rangeVarName(r.Relation)
	switch r.RenameType {
	case pg.ObjectType_OBJECT_COLUMN:
		if r.RelationType == pg.ObjectType_OBJECT_TABLE {
			return Change{Kind: RenameColumn, Table: table, Column: r.Subname, NewName: r.Newname}
		}
	case pg.ObjectType_OBJECT_TABLE:
		return Change{Kind: RenameTable, Table: table, NewName: r.Newname}
	case pg.ObjectType_OBJECT_INDEX:
		return Change{Kind: Safe, Table: table, Reason: "renames an index: application queries do not name indexes"}
	case pg.ObjectType_OBJECT_TABCONSTRAINT:
		return Change{Kind: Safe, Table: table, Reason: "renames a constraint: application queries do not name constraints"}
	}
	return Change{Kind: Unknown, Table: table, Reason: fmt.Sprintf("renaming a %s is not in the change catalogue", objectName(r.RenameType))}
}

func objectName(t pg.ObjectType) string {
	return strings.ToLower(strings.TrimPrefix(t.String(), "OBJECT_"))
}

func classifyAlterTable(a *pg.AlterTableStmt, p printer) []Change {
	table := rangeVarName(a.Relation)
	if a.Objtype != pg.ObjectType_OBJECT_TABLE {
		return []Change{{Kind: Unknown, Table: table, Reason: fmt.Sprintf("ALTER on a %s is not in the change catalogue", objectName(a.Objtype))}}
	}
	var out []Change
	for _, cn := range a.Cmds {
		cmd := cn.GetAlterTableCmd()
		c := classifyAlterCmd(a.Relation, cmd, p)
		c.Table = table
		// Each subcommand is shown as its own statement, and replayed alone
		// (with its inline constraints) to read the schema the next one is
		// planned against.
		c.SQL = p.stmt(func() *pg.Node {
			return &pg.Node{Node: &pg.Node_AlterTableStmt{AlterTableStmt: &pg.AlterTableStmt{
				Relation: a.Relation, Cmds: []*pg.Node{cn}, Objtype: a.Objtype, MissingOk: a.MissingOk,
			}}}
		})
		c.Replay = c.SQL
		if cmd.Subtype == pg.AlterTableType_AT_AddColumn {
			// The column's own REFERENCES/CHECK/UNIQUE/PRIMARY KEY become
			// changes of their own, each with its safe recipe.
			def := cmd.Def.GetColumnDef()
			if a.MissingOk || cmd.MissingOk {
				c.IfExists = true
			}
			extra := inlineColumnConstraints(a.Relation, def, p)
			if len(extra) > 0 {
				c.SQL = p.stmt(func() *pg.Node {
					return alterNode(a.Relation, &pg.AlterTableCmd{Subtype: cmd.Subtype, Def: &pg.Node{Node: &pg.Node_ColumnDef{ColumnDef: withoutTableConstraints(def)}}})
				})
			}
			out = append(out, c)
			out = append(out, extra...)
			continue
		}
		out = append(out, c)
	}
	return out
}

func withoutTableConstraints(def *pg.ColumnDef) *pg.ColumnDef {
	cp := proto.Clone(def).(*pg.ColumnDef)
	cp.Constraints = nil
	for _, cn := range def.Constraints {
		switch cn.GetConstraint().Contype {
		case pg.ConstrType_CONSTR_FOREIGN, pg.ConstrType_CONSTR_CHECK, pg.ConstrType_CONSTR_UNIQUE, pg.ConstrType_CONSTR_PRIMARY:
		default:
			cp.Constraints = append(cp.Constraints, cn)
		}
	}
	return cp
}

// alterNode is "ALTER TABLE rel cmd".
func alterNode(rel *pg.RangeVar, cmd *pg.AlterTableCmd) *pg.Node {
	return &pg.Node{Node: &pg.Node_AlterTableStmt{AlterTableStmt: &pg.AlterTableStmt{
		Relation: rel, Objtype: pg.ObjectType_OBJECT_TABLE,
		Cmds: []*pg.Node{{Node: &pg.Node_AlterTableCmd{AlterTableCmd: cmd}}},
	}}}
}

func classifyAlterCmd(rel *pg.RangeVar, cmd *pg.AlterTableCmd, p printer) Change {
	switch cmd.Subtype {
	case pg.AlterTableType_AT_AddColumn:
		return addColumn(cmd.Def.GetColumnDef())
	case pg.AlterTableType_AT_DropColumn:
		return Change{Kind: DropColumn, Column: cmd.Name, Cascade: cmd.Behavior == pg.DropBehavior_DROP_CASCADE, IfExists: cmd.MissingOk}
	case pg.AlterTableType_AT_AlterColumnType:
		def := cmd.Def.GetColumnDef()
		c := Change{Kind: ChangeType, Column: cmd.Name, Type: deparseType(def.TypeName)}
		if def.RawDefault != nil {
			c.Up = deparseExpr(def.RawDefault)
		}
		return c
	case pg.AlterTableType_AT_SetNotNull:
		return Change{Kind: SetNotNull, Column: cmd.Name}
	case pg.AlterTableType_AT_DropNotNull:
		return Change{Kind: DropNotNull, Column: cmd.Name}
	case pg.AlterTableType_AT_ColumnDefault:
		if cmd.Def == nil {
			return Change{Kind: DropDefault, Column: cmd.Name}
		}
		return Change{Kind: SetDefault, Column: cmd.Name, Default: deparseExpr(cmd.Def)}
	case pg.AlterTableType_AT_AddConstraint:
		return addConstraint(rel, cmd.Def.GetConstraint(), "", p)
	case pg.AlterTableType_AT_ValidateConstraint:
		return Change{Kind: Safe, Constraint: cmd.Name, ObjectType: "VALIDATE CONSTRAINT", Aside: true, Reason: "VALIDATE CONSTRAINT takes SHARE UPDATE EXCLUSIVE: reads and writes go on"}
	case pg.AlterTableType_AT_DropConstraint:
		return Change{Kind: Safe, Constraint: cmd.Name, ObjectType: "DROP CONSTRAINT", Cascade: cmd.Behavior == pg.DropBehavior_DROP_CASCADE, IfExists: cmd.MissingOk,
			Reason: "dropping a constraint accepts everything it accepted before"}
	case pg.AlterTableType_AT_EnableTrig, pg.AlterTableType_AT_DisableTrig, pg.AlterTableType_AT_EnableAlwaysTrig,
		pg.AlterTableType_AT_EnableReplicaTrig, pg.AlterTableType_AT_EnableTrigAll, pg.AlterTableType_AT_DisableTrigAll,
		pg.AlterTableType_AT_EnableTrigUser, pg.AlterTableType_AT_DisableTrigUser:
		return Change{Kind: Safe, Reason: "switches triggers on or off: catalogue only (SHARE ROW EXCLUSIVE)"}
	case pg.AlterTableType_AT_SetStatistics, pg.AlterTableType_AT_SetOptions, pg.AlterTableType_AT_ResetOptions,
		pg.AlterTableType_AT_SetRelOptions, pg.AlterTableType_AT_ResetRelOptions, pg.AlterTableType_AT_ReplaceRelOptions,
		pg.AlterTableType_AT_ClusterOn, pg.AlterTableType_AT_DropCluster, pg.AlterTableType_AT_ReplicaIdentity,
		pg.AlterTableType_AT_ChangeOwner, pg.AlterTableType_AT_SetCompression, pg.AlterTableType_AT_AlterConstraint,
		pg.AlterTableType_AT_SetStorage:
		return Change{Kind: Safe, Column: cmd.Name, Aside: true, Reason: "storage, statistics, ownership or constraint timing: catalogue only, nothing N reads or writes changes"}
	}
	name := strings.TrimPrefix(cmd.Subtype.String(), "AT_")
	return Change{Kind: Unknown, Column: cmd.Name, Reason: fmt.Sprintf("ALTER TABLE subcommand %s is not in the change catalogue", name)}
}

func addColumn(def *pg.ColumnDef) Change {
	c := Change{Kind: AddColumn, Column: def.Colname, Type: deparseType(def.TypeName), NotNull: def.IsNotNull}
	for _, cn := range def.Constraints {
		con := cn.GetConstraint()
		switch con.Contype {
		case pg.ConstrType_CONSTR_NOTNULL:
			c.NotNull = true
		case pg.ConstrType_CONSTR_DEFAULT:
			c.Default = deparseExpr(con.RawExpr)
			c.VolatileDefault = hasVolatileCall(con.RawExpr)
		case pg.ConstrType_CONSTR_PRIMARY:
			c.NotNull = true
		case pg.ConstrType_CONSTR_IDENTITY:
			c.VolatileDefault = true
		}
	}
	if isSerial(def.TypeName) {
		c.VolatileDefault = true
	}
	return c
}

// inlineColumnConstraints turns "ADD COLUMN x int REFERENCES t" and the like
// into the constraint changes they imply, so each gets its safe recipe.
func inlineColumnConstraints(rel *pg.RangeVar, def *pg.ColumnDef, p printer) []Change {
	var out []Change
	for _, cn := range def.Constraints {
		con := cn.GetConstraint()
		switch con.Contype {
		case pg.ConstrType_CONSTR_FOREIGN, pg.ConstrType_CONSTR_CHECK, pg.ConstrType_CONSTR_UNIQUE, pg.ConstrType_CONSTR_PRIMARY:
			c := addConstraint(rel, con, def.Colname, p)
			c.Table = rangeVarName(rel)
			c.SQL = p.stmt(func() *pg.Node {
				cp := proto.Clone(con).(*pg.Constraint)
				if cp.Contype == pg.ConstrType_CONSTR_FOREIGN && len(cp.FkAttrs) == 0 {
					cp.FkAttrs = []*pg.Node{pg.MakeStrNode(def.Colname)}
				}
				if (cp.Contype == pg.ConstrType_CONSTR_UNIQUE || cp.Contype == pg.ConstrType_CONSTR_PRIMARY) && len(cp.Keys) == 0 {
					cp.Keys = []*pg.Node{pg.MakeStrNode(def.Colname)}
				}
				return alterNode(rel, &pg.AlterTableCmd{Subtype: pg.AlterTableType_AT_AddConstraint, Def: &pg.Node{Node: &pg.Node_Constraint{Constraint: cp}}})
			})
			out = append(out, c)
		}
	}
	return out
}

func addConstraint(rel *pg.RangeVar, con *pg.Constraint, column string, p printer) Change {
	table := rangeVarName(rel)
	switch con.Contype {
	case pg.ConstrType_CONSTR_FOREIGN:
		cols := names(con.FkAttrs)
		if len(cols) == 0 && column != "" {
			cols = []string{column}
		}
		c := Change{Kind: AddForeignKey, Columns: cols, RefTable: rangeVarName(con.Pktable), RefColumns: names(con.PkAttrs), NotValid: con.SkipValidation}
		if con.Conname == "" {
			con.Conname = pgObjectName(rel.Relname, strings.Join(cols, "_"), "fkey")
		}
		c.Constraint = con.Conname
		c.Definition = p.stmt(func() *pg.Node { return notValidConstraint(rel, con, cols) })
		return c
	case pg.ConstrType_CONSTR_CHECK:
		c := Change{Kind: AddCheck, Expr: deparseExpr(con.RawExpr), NotValid: con.SkipValidation, Columns: columnRefs(con.RawExpr)}
		if con.Conname == "" {
			col := ""
			if len(c.Columns) == 1 {
				col = c.Columns[0]
			}
			con.Conname = pgObjectName(rel.Relname, col, "check")
		}
		c.Constraint = con.Conname
		c.Definition = p.stmt(func() *pg.Node { return notValidConstraint(rel, con, nil) })
		return c
	case pg.ConstrType_CONSTR_UNIQUE, pg.ConstrType_CONSTR_PRIMARY:
		kind, suffix := AddUnique, "key"
		if con.Contype == pg.ConstrType_CONSTR_PRIMARY {
			kind, suffix = AddPrimaryKey, "pkey"
		}
		if con.Indexname != "" {
			return Change{Kind: Safe, Constraint: con.Conname, ObjectType: "ADD CONSTRAINT", Aside: true, Reason: "adds a constraint USING an existing index: no table scan, and the index enforces it already"}
		}
		cols := names(con.Keys)
		if len(cols) == 0 && column != "" {
			cols = []string{column}
		}
		if con.Conname == "" {
			if kind == AddPrimaryKey {
				con.Conname = pgObjectName(rel.Relname, "", suffix)
			} else {
				con.Conname = pgObjectName(rel.Relname, strings.Join(cols, "_"), suffix)
			}
		}
		if len(con.Including) > 0 || con.WhereClause != nil || len(con.Options) > 0 {
			return Change{Kind: Unknown, Table: table, Constraint: con.Conname, Reason: "UNIQUE/PRIMARY KEY with INCLUDE, WITH or WHERE options is not in the change catalogue"}
		}
		return Change{Kind: kind, Constraint: con.Conname, Columns: cols, NotNull: con.NullsNotDistinct}
	}
	return Change{Kind: Unknown, Table: table, Reason: fmt.Sprintf("ADD CONSTRAINT of type %s is not in the change catalogue", strings.TrimPrefix(con.Contype.String(), "CONSTR_"))}
}

// notValidConstraint is "ALTER TABLE t ADD CONSTRAINT c ... NOT VALID".
func notValidConstraint(rel *pg.RangeVar, con *pg.Constraint, fkCols []string) *pg.Node {
	cp := proto.Clone(con).(*pg.Constraint)
	cp.SkipValidation = true
	cp.InitiallyValid = false
	if con.Contype == pg.ConstrType_CONSTR_FOREIGN && len(cp.FkAttrs) == 0 {
		for _, c := range fkCols {
			cp.FkAttrs = append(cp.FkAttrs, pg.MakeStrNode(c))
		}
	}
	return alterNode(rel, &pg.AlterTableCmd{
		Subtype: pg.AlterTableType_AT_AddConstraint,
		Def:     &pg.Node{Node: &pg.Node_Constraint{Constraint: cp}},
	})
}

func classifyCreateIndex(ix *pg.IndexStmt, p printer) Change {
	table := rangeVarName(ix.Relation)
	if ix.Idxname == "" {
		var cols []string
		for _, p := range ix.IndexParams {
			if e := p.GetIndexElem(); e != nil && e.Name != "" {
				cols = append(cols, e.Name)
			} else {
				cols = append(cols, "expr")
			}
		}
		ix.Idxname = pgObjectName(ix.Relation.Relname, strings.Join(cols, "_"), "idx")
	}
	c := Change{Kind: CreateIndex, Table: table, Constraint: ix.Idxname, Concurrently: ix.Concurrent, NotNull: ix.Unique}
	for _, p := range ix.IndexParams {
		if e := p.GetIndexElem(); e != nil && e.Name != "" {
			c.Columns = append(c.Columns, e.Name)
		}
	}
	c.Definition = p.stmt(func() *pg.Node {
		cp := proto.Clone(ix).(*pg.IndexStmt)
		cp.Concurrent = true
		cp.IfNotExists = false
		return &pg.Node{Node: &pg.Node_IndexStmt{IndexStmt: cp}}
	})
	return c
}

func classifyDrop(d *pg.DropStmt, p printer) []Change {
	cascade := d.Behavior == pg.DropBehavior_DROP_CASCADE
	var out []Change
	for _, o := range d.Objects {
		replay := p.stmt(func() *pg.Node {
			one := &pg.DropStmt{Objects: []*pg.Node{o}, RemoveType: d.RemoveType, Behavior: d.Behavior, MissingOk: d.MissingOk, Concurrent: d.Concurrent}
			return &pg.Node{Node: &pg.Node_DropStmt{DropStmt: one}}
		})
		switch d.RemoveType {
		case pg.ObjectType_OBJECT_TABLE:
			out = append(out, Change{Kind: DropTable, Table: qualifiedFromList(o.GetList().GetItems()), Cascade: cascade, IfExists: d.MissingOk, Replay: replay})
		case pg.ObjectType_OBJECT_INDEX:
			name := qualifiedFromList(o.GetList().GetItems())
			def := p.stmt(func() *pg.Node {
				conc := &pg.DropStmt{Objects: []*pg.Node{o}, RemoveType: d.RemoveType, Behavior: d.Behavior, MissingOk: true, Concurrent: true}
				return &pg.Node{Node: &pg.Node_DropStmt{DropStmt: conc}}
			})
			out = append(out, Change{
				Kind: DropIndex, Constraint: name, Concurrently: d.Concurrent, IfExists: d.MissingOk, Cascade: cascade,
				Definition: def, Replay: replay,
			})
		default:
			typ := strings.ToUpper(strings.ReplaceAll(objectName(d.RemoveType), "_", " "))
			name, table := droppedObject(d.RemoveType, o)
			if name == "" {
				out = append(out, Change{Kind: Unknown, Replay: replay, Reason: fmt.Sprintf("DROP %s is not in the change catalogue", typ)})
				continue
			}
			out = append(out, Change{Kind: DropObject, Object: name, ObjectType: typ, Table: table, Cascade: cascade, IfExists: d.MissingOk, Replay: replay, SQL: replay})
		}
	}
	return out
}

// droppedObject names what a DROP removes: "schema.name" (public when not
// given), a function with its argument types, a trigger, rule or policy as
// "schema.table.name" with its table. "" for kinds phasekit does not track.
func droppedObject(t pg.ObjectType, o *pg.Node) (name, table string) {
	switch t {
	case pg.ObjectType_OBJECT_VIEW, pg.ObjectType_OBJECT_MATVIEW, pg.ObjectType_OBJECT_SEQUENCE,
		pg.ObjectType_OBJECT_FOREIGN_TABLE, pg.ObjectType_OBJECT_COLLATION, pg.ObjectType_OBJECT_STATISTIC_EXT,
		pg.ObjectType_OBJECT_CONVERSION, pg.ObjectType_OBJECT_TSCONFIGURATION, pg.ObjectType_OBJECT_TSDICTIONARY:
		return qualifiedFromList(o.GetList().GetItems()), ""
	case pg.ObjectType_OBJECT_TYPE, pg.ObjectType_OBJECT_DOMAIN:
		if tn := o.GetTypeName(); tn != nil {
			return qualifiedFromList(tn.Names), ""
		}
		return qualifiedFromList(o.GetList().GetItems()), ""
	case pg.ObjectType_OBJECT_FUNCTION, pg.ObjectType_OBJECT_PROCEDURE, pg.ObjectType_OBJECT_ROUTINE, pg.ObjectType_OBJECT_AGGREGATE:
		if ow := o.GetObjectWithArgs(); ow != nil {
			name = qualifiedFromList(ow.Objname)
			if !ow.ArgsUnspecified {
				var args []string
				for _, a := range ow.Objargs {
					args = append(args, deparseType(a.GetTypeName()))
				}
				name += "(" + strings.Join(args, ", ") + ")"
			}
			return name, ""
		}
	case pg.ObjectType_OBJECT_SCHEMA, pg.ObjectType_OBJECT_EXTENSION:
		if s := o.GetString_(); s != nil {
			return s.Sval, ""
		}
	case pg.ObjectType_OBJECT_TRIGGER, pg.ObjectType_OBJECT_RULE, pg.ObjectType_OBJECT_POLICY:
		items := names(o.GetList().GetItems())
		if len(items) >= 2 {
			table = qualifiedFromList(o.GetList().GetItems()[:len(items)-1])
			return table + "." + items[len(items)-1], table
		}
	}
	return "", ""
}

func classifyAlterEnum(e *pg.AlterEnumStmt) Change {
	enum := qualifiedFromList(e.TypeName)
	if e.OldVal != "" {
		return Change{Kind: RenameEnumValue, Enum: enum, Value: e.OldVal, NewName: e.NewVal}
	}
	return Change{Kind: Safe, Enum: enum, Value: e.NewVal, Reason: "ADD VALUE: old code never writes the new value"}
}

// rangeVarName returns "schema.name", public when the schema is not given.
func rangeVarName(r *pg.RangeVar) string {
	if r == nil {
		return ""
	}
	s := r.Schemaname
	if s == "" {
		s = "public"
	}
	return s + "." + r.Relname
}

func qualifiedFromList(items []*pg.Node) string {
	parts := names(items)
	switch len(parts) {
	case 0:
		return ""
	case 1:
		return "public." + parts[0]
	}
	return strings.Join(parts[len(parts)-2:], ".")
}

func names(items []*pg.Node) []string {
	var out []string
	for _, it := range items {
		if s := it.GetString_(); s != nil {
			out = append(out, s.Sval)
		}
	}
	return out
}

// pgObjectName names an object the way PostgreSQL's ChooseRelationName does
// for the common case: table_column_suffix, cut to fit NAMEDATALEN.
func pgObjectName(table, column, suffix string) string {
	parts := []string{table}
	if column != "" {
		parts = append(parts, column)
	}
	name := strings.Join(parts, "_")
	if max := 63 - len(suffix) - 1; len(name) > max {
		name = name[:max]
	}
	return name + "_" + suffix
}

// volatileFunctions are built-in functions that give a new value per row.
// now() and CURRENT_TIMESTAMP are STABLE, so ADD COLUMN with them is fast.
var volatileFunctions = map[string]bool{
	"random": true, "gen_random_uuid": true, "uuid_generate_v1": true, "uuid_generate_v4": true,
	"clock_timestamp": true, "timeofday": true, "nextval": true, "txid_current": true, "setseed": true,
	"random_normal": true, "uuidv4": true, "uuidv7": true,
}

func hasVolatileCall(n *pg.Node) bool {
	found := false
	walk(n, func(x *pg.Node) {
		if f := x.GetFuncCall(); f != nil {
			parts := names(f.Funcname)
			if len(parts) > 0 && volatileFunctions[parts[len(parts)-1]] {
				found = true
			}
		}
	})
	return found
}

func isSerial(t *pg.TypeName) bool {
	parts := names(t.GetNames())
	if len(parts) == 0 {
		return false
	}
	switch parts[len(parts)-1] {
	case "serial", "bigserial", "smallserial", "serial4", "serial8", "serial2":
		return true
	}
	return false
}

// columnRefs lists the distinct column names an expression reads, in order.
func columnRefs(n *pg.Node) []string {
	var out []string
	seen := map[string]bool{}
	walk(n, func(x *pg.Node) {
		if cr := x.GetColumnRef(); cr != nil {
			parts := names(cr.Fields)
			if len(parts) > 0 && !seen[parts[len(parts)-1]] {
				seen[parts[len(parts)-1]] = true
				out = append(out, parts[len(parts)-1])
			}
		}
	})
	return out
}

// autocommit reports statements PostgreSQL refuses inside a transaction
// block.
func autocommit(n *pg.Node) bool {
	switch {
	case n.GetIndexStmt() != nil:
		return n.GetIndexStmt().Concurrent
	case n.GetDropStmt() != nil:
		return n.GetDropStmt().Concurrent
	case n.GetReindexStmt() != nil:
		for _, p := range n.GetReindexStmt().Params {
			if d := p.GetDefElem(); d != nil && d.Defname == "concurrently" {
				return true
			}
		}
	case n.GetVacuumStmt() != nil, n.GetCreatedbStmt() != nil, n.GetDropdbStmt() != nil,
		n.GetAlterSystemStmt() != nil, n.GetCreateTableSpaceStmt() != nil, n.GetDropTableSpaceStmt() != nil:
		return true
	}
	return false
}

// relations lists every relation a statement names, "schema.name", in order
// of first appearance.
func relations(n *pg.Node) []string {
	var out []string
	seen := map[string]bool{}
	walkMessages(n, func(x any) {
		if rv, ok := x.(*pg.RangeVar); ok {
			if name := rangeVarName(rv); !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
		}
	})
	return out
}
