package migrations

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/phasekit/phasekit/schema"
)

func schemaOf(ctx context.Context, conn *pgx.Conn) (*schema.Snapshot, error) {
	s, err := schema.Introspect(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("read the live schema: %w", err)
	}
	return s, nil
}
