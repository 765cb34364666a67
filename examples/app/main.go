// Command app is the sample application for the Chinook rename
// (customer.email to customer.email_address), in the two versions that must
// work together while the change rolls out: v1 (N) uses customer.email and
// v2 (N+1) uses customer.email_address. phasekit's tests, docs and demo run
// it against the database at every phase boundary.
//
//	app -version v1|v2 check      one pass of reads and writes through DATABASE_URL
//	app -version v1|v2 serve      HTTP backend on 127.0.0.1:$PORT
//	app -version v1|v2 frontend   the frontend's checks against $BACKEND_URL
//
// Every mode exits non-zero with the error (the SQL error with its SQLSTATE,
// where there is one) on stderr when it fails.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

func main() {
	version := flag.String("version", "", "app version: v1 (customer.email) or v2 (customer.email_address)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: app -version v1|v2 check|serve|frontend")
		flag.PrintDefaults()
	}
	flag.Parse()
	col, ok := columns[*version]
	if !ok || flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	mode := flag.Arg(0)
	log.SetFlags(0)
	log.SetPrefix(fmt.Sprintf("app %s %s: ", *version, mode))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch mode {
	case "check":
		err = check(ctx, col)
	case "serve":
		err = serve(ctx, col)
	case "frontend":
		err = frontend(ctx, *version)
	default:
		flag.Usage()
		os.Exit(2)
	}
	if err != nil {
		log.Print(err)
		os.Exit(1)
	}
}

// columns is the customer column each version reads and writes the email through.
var columns = map[string]string{"v1": "email", "v2": "email_address"}

func databaseURL() (string, error) {
	dsn := os.Getenv("DATABASE_URL")
	if dsn == "" {
		return "", errors.New("DATABASE_URL is not set")
	}
	return dsn, nil
}

// check reads and writes customers through col, leaving the table's rows as
// it found them.
func check(ctx context.Context, col string) error {
	dsn, err := databaseURL()
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	c := pgx.Identifier{col}.Sanitize()

	rows, err := conn.Query(ctx, "SELECT customer_id, "+c+" FROM customer ORDER BY customer_id LIMIT 5")
	if err != nil {
		return fmt.Errorf("read customers: %w", err)
	}
	type customer struct {
		id    int
		email *string // NULL until the new column is backfilled
	}
	var first []customer
	for rows.Next() {
		var cu customer
		if err := rows.Scan(&cu.id, &cu.email); err != nil {
			rows.Close()
			return fmt.Errorf("read customers: %w", err)
		}
		first = append(first, cu)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read customers: %w", err)
	}
	if len(first) == 0 {
		return errors.New("read customers: the customer table is empty")
	}
	fmt.Printf("read %d customers through customer.%s\n", len(first), col)

	// Write back the address the customer already has: the row changes
	// (triggers fire) but the data stays as it was.
	cu := first[0]
	email := fmt.Sprintf("customer%d@example.com", cu.id)
	if cu.email != nil && *cu.email != "" {
		email = *cu.email
	}
	tag, err := conn.Exec(ctx, "UPDATE customer SET "+c+" = $1 WHERE customer_id = $2", email, cu.id)
	if err != nil {
		return fmt.Errorf("update customer %d: %w", cu.id, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("update customer %d: %d rows updated, want 1", cu.id, tag.RowsAffected())
	}
	fmt.Printf("updated customer %d\n", cu.id)

	var id int
	err = conn.QueryRow(ctx, "INSERT INTO customer (first_name, last_name, "+c+") VALUES ($1, $2, $3) RETURNING customer_id",
		"Phasekit", "Check", "phasekit-check@example.com").Scan(&id)
	if err != nil {
		return fmt.Errorf("insert customer: %w", err)
	}
	var got *string
	if err := conn.QueryRow(ctx, "SELECT "+c+" FROM customer WHERE customer_id = $1", id).Scan(&got); err != nil {
		return fmt.Errorf("read inserted customer %d: %w", id, err)
	}
	if _, err := conn.Exec(ctx, "DELETE FROM customer WHERE customer_id = $1", id); err != nil {
		return fmt.Errorf("delete inserted customer %d: %w", id, err)
	}
	if got == nil || *got != "phasekit-check@example.com" {
		return fmt.Errorf("inserted customer %d: %s reads back %v, want phasekit-check@example.com", id, col, deref(got))
	}
	fmt.Printf("inserted and deleted customer %d\n", id)
	return nil
}

func deref(s *string) string {
	if s == nil {
		return "NULL"
	}
	return strconv.Quote(*s)
}

// serve is the backend: it answers until SIGTERM or SIGINT.
func serve(ctx context.Context, col string) error {
	dsn, err := databaseURL()
	if err != nil {
		return err
	}
	port := os.Getenv("PORT")
	if port == "" {
		return errors.New("PORT is not set")
	}
	// The pool connects on first use, so the backend comes up (and reports
	// on /health) even while the database is away.
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	defer pool.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		if err := pool.Ping(r.Context()); err != nil {
			httpError(w, r, http.StatusServiceUnavailable, fmt.Errorf("database: %w", err))
			return
		}
		io.WriteString(w, "ok\n")
	})
	query := "SELECT " + pgx.Identifier{col}.Sanitize() + " FROM customer WHERE customer_id = $1"
	mux.HandleFunc("GET /customers/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.Atoi(r.PathValue("id"))
		if err != nil {
			httpError(w, r, http.StatusBadRequest, fmt.Errorf("customer id %q is not a number", r.PathValue("id")))
			return
		}
		var email *string
		err = pool.QueryRow(r.Context(), query, id).Scan(&email)
		if errors.Is(err, pgx.ErrNoRows) {
			httpError(w, r, http.StatusNotFound, fmt.Errorf("customer %d not found", id))
			return
		}
		if err != nil {
			httpError(w, r, http.StatusInternalServerError, fmt.Errorf("read customer %d: %w", id, err))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"id": id, "email": email})
	})

	srv := &http.Server{
		Handler:           logRequests(mux),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          log.Default(),
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		return err
	}
	log.Printf("listening on %s", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Print("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

func httpError(w http.ResponseWriter, r *http.Request, code int, err error) {
	log.Printf("%s %s: %d: %v", r.Method, r.URL.Path, code, err)
	http.Error(w, err.Error(), code)
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func logRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		log.Printf("%s %s %d %v", r.Method, r.URL.Path, sw.code, time.Since(t0).Round(time.Microsecond))
	})
}

// frontend runs the frontend's checks against the backend at $BACKEND_URL.
func frontend(ctx context.Context, version string) error {
	base := strings.TrimSuffix(os.Getenv("BACKEND_URL"), "/")
	if base == "" {
		return errors.New("BACKEND_URL is not set")
	}
	client := &http.Client{Timeout: 10 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/customers/1", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET /customers/1: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("GET /customers/1: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /customers/1: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var c struct {
		ID    int     `json:"id"`
		Email *string `json:"email"`
	}
	if err := json.Unmarshal(body, &c); err != nil {
		return fmt.Errorf("GET /customers/1: bad JSON %q: %w", body, err)
	}
	if c.ID != 1 || c.Email == nil || *c.Email == "" {
		return fmt.Errorf("GET /customers/1: want customer 1 with an email, got %s", strings.TrimSpace(string(body)))
	}
	// v2's frontend shows the address as a mailto: link, so it must be one.
	if version == "v2" && !strings.Contains(*c.Email, "@") {
		return fmt.Errorf("GET /customers/1: email %q is not an address", *c.Email)
	}
	fmt.Printf("customer 1: %s\n", *c.Email)
	return nil
}
