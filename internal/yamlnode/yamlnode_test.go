package yamlnode_test

import (
	"errors"
	"testing"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/internal/yamlnode"
)

// read reads src as a mapping of a (a list of names, each given) and b (a
// whole number of at least 1), the way the fleet and pipeline readers do.
func read(src string) ([]string, error) {
	doc, err := yamlnode.Parse("f.yaml", []byte(src), "empty file")
	if err != nil {
		return nil, err
	}
	r := yamlnode.Reader{File: "f.yaml"}
	m, err := r.Mapping(doc, "the file", []string{"a", "b", "defs"})
	if err != nil {
		return nil, err
	}
	n, err := r.Required(m, "a", "the file")
	if err != nil {
		return nil, err
	}
	items, err := r.List(n, "a")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, item := range items {
		s, err := r.Str(item, "a name")
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	if n := m.Get("b"); n != nil {
		if _, err := r.Whole(n, "b", 1); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func TestRead(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"aliases followed", "defs: [&x one]\na: [*x, two]\n", ""},
		{"invalid YAML keeps its line", "a: [one]\nb: [\n", "f.yaml:2:1: invalid YAML: did not find expected node content"},
		{"empty", "", "f.yaml:1:1: empty file"},
		{"not a mapping", "- a\n", "f.yaml:1:1: the file must be a mapping of a, b, defs"},
		{"unknown key with hint", "a: [one]\nbb: 1\n", `f.yaml:2:1: unknown field "bb" in the file (did you mean "b"?); known: a, b, defs`},
		{"unknown key, nothing close", "a: [one]\nzzzzzz: 1\n", `f.yaml:2:1: unknown field "zzzzzz" in the file; known: a, b, defs`},
		{"key twice", "a: [one]\na: [two]\n", `f.yaml:2:1: "a" appears twice in the file`},
		{"null is no value", "a: ~\n", "f.yaml:1:4: a has no value"},
		{"missing", "b: 1\n", `f.yaml:1:1: the file needs "a"`},
		{"empty list", "a: []\n", "f.yaml:1:4: a must not be empty"},
		{"blank string", "a: [' ']\n", "f.yaml:1:5: a name must not be empty"},
		{"below min", "a: [one]\nb: 0\n", "f.yaml:2:4: b must be at least 1, not 0"},
		{"quoted number", "a: [one]\nb: '2'\n", "f.yaml:2:4: b must be a whole number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := read(tc.src)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ie *change.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("got %v, want an InputError %q", err, tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("got  %s\nwant %s", err, tc.want)
			}
		})
	}
}
