package golden

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFirstDiff(t *testing.T) {
	for _, tc := range []struct{ want, got, diff string }{
		{"a\nb\n", "a\nc\n", "line 2:\n- b\n+ c"},
		{"a", "a\nb", "lengths differ: 1 lines want, 2 got"},
	} {
		if d := FirstDiff(tc.want, tc.got); d != tc.diff {
			t.Errorf("FirstDiff(%q, %q) = %q, want %q", tc.want, tc.got, d, tc.diff)
		}
	}
}

func TestRunPattern(t *testing.T) {
	if got, want := runPattern("TestGolden/a.b (c)"), `^TestGolden$/^a\.b \(c\)$`; got != want {
		t.Errorf("runPattern = %q, want %q", got, want)
	}
}

func TestCheckMatches(t *testing.T) {
	file := filepath.Join(t.TempDir(), "x.txt")
	if err := os.WriteFile(file, []byte("same\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	Check(t, file, []byte("same\n"))
}
