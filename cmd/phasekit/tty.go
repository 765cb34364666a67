package main

import (
	"io"
	"os"
)

// isTerminal reports whether w is a character device (a terminal), to pick
// a progress bar over plain lines.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
