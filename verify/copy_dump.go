package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5"
)

// dumpFormat is the kind of file CopyOptions.Data names.
type dumpFormat int

const (
	formatPlain dumpFormat = iota
	formatCustom
	formatDirectory
	formatTar
)

// detectDumpFormat tells pg_dump's formats apart the way pg_restore does:
// by the "PGDMP" header of a custom archive, the toc.dat of a directory
// archive, the tar header whose first member is toc.dat; anything else is
// taken as a plain SQL script.
func detectDumpFormat(path string) (dumpFormat, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("copy data: %w", err)
	}
	if fi.IsDir() {
		if _, err := os.Stat(filepath.Join(path, "toc.dat")); err != nil {
			return 0, fmt.Errorf("copy data: directory %s is not a pg_dump directory archive: no toc.dat", path)
		}
		return formatDirectory, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("copy data: %w", err)
	}
	defer f.Close()
	head := make([]byte, 512)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("copy data: read %s: %w", path, err)
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte("PGDMP")):
		return formatCustom, nil
	case len(head) >= 262 && string(head[257:262]) == "ustar" && string(bytes.TrimRight(head[:100], "\x00")) == "toc.dat":
		return formatTar, nil
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return 0, fmt.Errorf("copy data: %s is gzip-compressed: decompress it first (gunzip -k)", path)
	}
	return formatPlain, nil
}

// fromDump restores opts.Data and masks and subsets it in the target.
func (c *copier) fromDump(ctx context.Context) error {
	file := c.opts.Data
	format, err := detectDumpFormat(file)
	if err != nil {
		return err
	}
	c.report.Source = file
	if format == formatPlain {
		c.report.Method = "psql"
		if err := LoadSQLFile(ctx, c.dstDSN, file); err != nil {
			return fmt.Errorf("copy data from %s: %w", file, err)
		}
		c.opts.Log("loaded " + file + " with psql")
		if err := c.checkOnTarget(ctx); err != nil {
			return err
		}
		if len(c.subsets) > 0 {
			fks, err := listForeignKeys(ctx, c.dst)
			if err != nil {
				return err
			}
			// The script has created triggers and foreign keys already.
			if err := applySubsets(ctx, c.dst, c.subsets, fks, c.removed, true); err != nil {
				return err
			}
		}
		if len(c.masks) > 0 {
			// Autovacuum may have analyzed the tables before they were masked.
			if err := maskInPlace(ctx, c.dst, c.masks, c.opts.MaskSalt, true); err != nil {
				return err
			}
		}
		return c.countRows(ctx)
	}

	jobs := c.opts.Jobs
	if format == formatTar {
		jobs = 1 // pg_restore runs a tar archive serially
	}
	c.report.Method = "pg_restore"
	if jobs > 1 {
		c.report.Method = fmt.Sprintf("pg_restore -j %d", jobs)
	}
	if len(c.opts.Masks) == 0 && len(c.opts.Subsets) == 0 {
		// Nothing to do between the sections: one run lets pg_restore
		// overlap them.
		if err := c.restore(ctx, file, "", jobs); err != nil {
			return err
		}
		return c.countRows(ctx)
	}
	if err := c.restore(ctx, file, "pre-data", 1); err != nil {
		return err
	}
	// Masks and subsets are checked before the data is loaded, so that a
	// typo fails in a second, not after the whole restore.
	if err := c.checkOnTarget(ctx); err != nil {
		return err
	}
	var fks []foreignKey
	if len(c.subsets) > 0 {
		if fks, err = archiveForeignKeys(ctx, c.dst, file); err != nil {
			return err
		}
	}
	restoreAutovacuum, err := pauseAutovacuum(ctx, c.dst, c.masks)
	if err != nil {
		return err
	}
	if err := c.restore(ctx, file, "data", jobs); err != nil {
		return err
	}
	// Subsetting before masking lets a condition see the original values,
	// as it does on a live source, and before the post-data section no
	// trigger fires, no index is maintained and no foreign key is checked.
	if err := applySubsets(ctx, c.dst, c.subsets, fks, c.removed, false); err != nil {
		return err
	}
	if len(c.masks) > 0 {
		if err := maskInPlace(ctx, c.dst, c.masks, c.opts.MaskSalt, false); err != nil {
			return err
		}
		c.opts.Log(fmt.Sprintf("masked %d columns and rewrote their tables", len(c.masks)))
	}
	if err := restoreAutovacuum(); err != nil {
		return err
	}
	if err := c.restore(ctx, file, "post-data", jobs); err != nil {
		return err
	}
	return c.countRows(ctx)
}

// checkOnTarget checks the masks and subsets against the target's schema.
func (c *copier) checkOnTarget(ctx context.Context) error {
	var err error
	if c.masks, err = checkMasks(ctx, c.dst, c.opts.Masks); err != nil {
		return err
	}
	c.subsets, err = checkSubsets(ctx, c.dst, c.opts.Subsets)
	return err
}

// archiveForeignKeys lists the foreign keys the post-data section of an
// archive creates, before the data is loaded: it runs that section on the
// empty tables inside a transaction it rolls back and reads them from the
// catalog. The subsets need them before the section can be restored for
// real, since a foreign key cannot be added while rows dangle.
func archiveForeignKeys(ctx context.Context, conn *pgx.Conn, file string) ([]foreignKey, error) {
	script, err := archiveScript(ctx, file, "post-data")
	if err != nil {
		return nil, err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("copy data: %w", err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, script); err != nil {
		return nil, fmt.Errorf("copy data: find the foreign keys of %s (trial run of its post-data section): %w", file, err)
	}
	return listForeignKeys(ctx, tx.Conn())
}

// countRows counts the target's tables and rows for the report.
func (c *copier) countRows(ctx context.Context) error {
	tables, err := listTables(ctx, c.dst)
	if err != nil {
		return err
	}
	c.report.Tables = len(tables)
	for _, t := range tables {
		var n int64
		if err := c.dst.QueryRow(ctx, "SELECT count(*) FROM ONLY "+t.name.sanitized()).Scan(&n); err != nil {
			return fmt.Errorf("copy data: count rows of %s: %w", t.name, err)
		}
		c.report.Rows += n
	}
	return nil
}
