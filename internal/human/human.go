// Package human formats numbers and text for people: byte sizes, durations
// in the milliseconds PostgreSQL settings take, and strings cut to a width
// without splitting a character. One copy of each, so every message and
// setting agrees.
package human

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Bytes is a size in bytes, kB, MB, GB, TB or PB (powers of 1024): one
// decimal below 10, none above ("512 bytes", "9.5 MB", "193 MB").
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	units := []string{"kB", "MB", "GB", "TB", "PB"}
	v := float64(n)
	i := -1
	for v >= unit && i < len(units)-1 {
		v /= unit
		i++
	}
	if v < 10 {
		return fmt.Sprintf("%.1f %s", v, units[i])
	}
	return fmt.Sprintf("%.0f %s", v, units[i])
}

// Millis is d in whole milliseconds, as PostgreSQL's lock_timeout and
// statement_timeout take them, rounded up so a short positive timeout never
// becomes 0 (which means no timeout at all); 0 or less stays 0.
func Millis(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// Setting is d as a PostgreSQL time setting ("100ms"), rounded up like
// Millis; "0" (no timeout) for 0 or less.
func Setting(d time.Duration) string {
	if d <= 0 {
		return "0"
	}
	return fmt.Sprintf("%dms", Millis(d))
}

// Shorten puts s on one line (runs of white space become one space) and
// cuts it to at most n characters, ending with "..." when it was longer,
// without splitting a UTF-8 sequence.
func Shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 3 {
		return string([]rune(s)[:n])
	}
	return string([]rune(s)[:n-3]) + "..."
}
