// Package verify runs changes against throwaway PostgreSQL servers and copies
// of real data, so that a plan is tried before it touches production.
//
// Its files fall into four groups, named by prefix.
//
// Sandboxes: a server phasekit may create and drop databases on.
//
//	sandbox.go            the Sandbox interface, OpenSandbox (picks a provider)
//	sandbox_local.go      Local: a throwaway cluster in a temporary directory
//	sandbox_local_*.go    how its server process is started, per platform;
//	                      Crash and Restart, for tests of what survives a crash
//	sandbox_docker.go     Docker: a container through testcontainers-go
//	sandbox_image.go      BuildImage: the local image, made without a registry
//	sandbox_dsn.go        DSNSandbox: scratch databases on an existing server
//	binaries.go           finding initdb, postgres, pg_dump, pg_restore, psql
//	sandboxtest/          the conformance suite every Sandbox passes
//
// Data copies: CopyData fills a sandbox database from a dump or a live server.
//
//	copy.go               CopyData, its options and shared steps (catalogue, pg_restore)
//	copy_dump.go          from a dump file: archive section by section, or a plain script
//	copy_stream.go        from a live server: one snapshot, tables streamed with COPY
//	copy_mask.go          masks: parsed, checked, applied in the SELECT or in place
//	copy_subset.go        subsets: kept rows, orphans pruned along foreign keys
//
// Schemas: a schema file in, a schema dump out.
//
//	schema_load.go        LoadSQLFile, RestoreDump (psql, pg_restore), LoadError
//	schema_dump.go        DumpSchema, NormalizeDump (what plancheck compares)
//	schema_snapshot.go    a schema.Snapshot from a live database or a file
//
// App versions and workloads: what the compatibility matrix runs.
//
//	app.go                the App interface; CommandApp (a command run with a DSN)
//	app_workload.go       WorkloadApp: a file of queries, and its parser
//	app_proc.go           running a command: process group, capped output, error line
//	app_zeta.go           RunZeta: a frontend of version N+1 against a backend of N
//
// verify/pgtest gives tests a cluster and databases copied from the shared
// datasets. The executor, the gate, fleets and the report do not import
// verify; they connect through internal/dbconn.
package verify
