package migrations

// CursorStatement lets the external tests check that their stores take
// Backfill's one-statement path.
type CursorStatement = cursorStatement

// LedgerCursorStatement is the ledger's store, for the same check.
var LedgerCursorStatement CursorStatement = (*ledgerCursor)(nil)

// BackfillPool connects a pool to dsn and closes it when the test ends.
var BackfillPool = backfillPool
