package change

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// ReadFiles reads every path with read and returns the migrations in path
// order. Reading is almost all parsing (pg_query's parser, deparser and
// protobuf decoding, CPU-bound and independent per file), so the files are
// read by a worker per CPU. On failure it returns the error of the first
// failing path in path order, as reading them one by one would: paths are
// handed out in order and none is started after a failure, so every path
// before a failing one has been read.
func ReadFiles(paths []string, read func(string) (*Migration, error)) ([]*Migration, error) {
	out := make([]*Migration, len(paths))
	errs := make([]error, len(paths))
	workers := min(runtime.GOMAXPROCS(0), len(paths))
	if workers <= 1 {
		// One file (the common pre-commit case) or one CPU: no goroutines.
		for i, p := range paths {
			m, err := read(p)
			if err != nil {
				return nil, err
			}
			out[i] = m
		}
		return out, nil
	}
	var next atomic.Int64
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for !failed.Load() {
				i := int(next.Add(1)) - 1
				if i >= len(paths) {
					return
				}
				out[i], errs[i] = read(paths[i])
				if errs[i] != nil {
					failed.Store(true)
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
