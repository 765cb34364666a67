package pipeline_test

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/phasekit/phasekit/pipeline"
)

func loadSchema(t *testing.T) map[string]any {
	t.Helper()
	b, err := pipeline.JSONSchema()
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	return s
}

// TestJSONSchemaAcceptsExample: the example validates against the schema,
// and pipelines the schema can refuse are refused by it.
func TestJSONSchemaAcceptsExample(t *testing.T) {
	s := loadSchema(t)
	if s["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema %v", s["$schema"])
	}
	src, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	doc := yamlDoc(t, string(src))
	if errs := validate(s, s, doc, "$"); len(errs) > 0 {
		t.Errorf("the example does not validate:\n%s", strings.Join(errs, "\n"))
	}
	// Every key the example uses is a property of the schema.
	props := map[string]bool{}
	walkProperties(s, props)
	var missing []string
	walkKeys(doc, func(k string) {
		if !props[k] {
			missing = append(missing, k)
		}
	})
	if len(missing) > 0 {
		t.Errorf("keys of the example missing from the schema: %v", missing)
	}

	for _, tc := range []struct{ name, src, want string }{
		{"unknown key", strings.Replace(string(src), "first_wave_bake:", "first_wave_bak:", 1), `$.stages[4]: unknown property "first_wave_bak"`},
		{"missing kind", strings.Replace(string(src), "    kind: alpha\n", "", 1), `$.stages[0]: missing "kind"`},
		{"bad kind", strings.Replace(string(src), "kind: alpha", "kind: dev", 1), `$.stages[0].kind: "dev" not in [alpha beta gamma zeta prod]`},
		{"bad duration", strings.Replace(string(src), "bake: 30m", "bake: 30", 1), `$.stages[0].bake: want string`},
		{"bad duration unit", strings.Replace(string(src), "bake: 30m", "bake: 30d", 1), `$.stages[0].bake: "30d" does not match`},
		{"bad comparison", strings.Replace(string(src), `comparison: ">"`, `comparison: "=="`, 1), `$.alarms[0].comparison: "==" not in`},
		{"datapoints zero", strings.Replace(string(src), "datapoints_to_alarm: 3", "datapoints_to_alarm: 0", 1), `$.alarms[0].datapoints_to_alarm: 0 below minimum 1`},
		{"no bake, no waves", strings.Replace(string(src), "    bake: 30m\n", "", 1), `$.stages[0]: missing "bake"`},
	} {
		errs := validate(s, s, yamlDoc(t, tc.src), "$")
		if !slices.ContainsFunc(errs, func(e string) bool { return strings.HasPrefix(e, tc.want) }) {
			t.Errorf("%s: want an error %q, got %q", tc.name, tc.want, errs)
		}
	}
}

// TestJSONSchemaDurations: the schema's duration pattern agrees with
// time.ParseDuration on what a pipeline file writes.
func TestJSONSchemaDurations(t *testing.T) {
	s := loadSchema(t)
	re := regexp.MustCompile(s["$defs"].(map[string]any)["duration"].(map[string]any)["pattern"].(string))
	for d, ok := range map[string]bool{"30m": true, "1h30m": true, "90s": true, "1.5h": true, "250ms": true, "30": false, "1d": false, "1 h": false, "": false, "h": false} {
		if re.MatchString(d) != ok {
			t.Errorf("pattern matches %q: %v, want %v", d, !ok, ok)
		}
	}
}

func yamlDoc(t *testing.T, src string) any {
	t.Helper()
	var doc any
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// walkProperties collects the names under every "properties" of a schema.
func walkProperties(v any, into map[string]bool) {
	switch v := v.(type) {
	case map[string]any:
		if props, ok := v["properties"].(map[string]any); ok {
			for k := range props {
				into[k] = true
			}
		}
		for _, c := range v {
			walkProperties(c, into)
		}
	case []any:
		for _, c := range v {
			walkProperties(c, into)
		}
	}
}

func walkKeys(v any, f func(string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, c := range v {
			f(k)
			walkKeys(c, f)
		}
	case []any:
		for _, c := range v {
			walkKeys(c, f)
		}
	}
}

// validate checks v against the part of JSON Schema the pipeline schema
// uses: $ref, type, enum, pattern, minLength, minimum, properties,
// required, additionalProperties: false, items, minItems, uniqueItems,
// if/then and not. It returns one message per problem.
func validate(root, s map[string]any, v any, at string) []string {
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, at+": "+fmt.Sprintf(format, args...)) }
	if ref, ok := s["$ref"].(string); ok {
		def := strings.TrimPrefix(ref, "#/$defs/")
		errs = append(errs, validate(root, root["$defs"].(map[string]any)[def].(map[string]any), v, at)...)
	}
	if typ, ok := s["type"].(string); ok && !hasType(v, typ) {
		fail("want %s, got %T", typ, v)
		return errs
	}
	if enum, ok := s["enum"].([]any); ok && !slices.Contains(enum, v) {
		var names []string
		for _, e := range enum {
			names = append(names, fmt.Sprint(e))
		}
		fail("%q not in %v", fmt.Sprint(v), names)
	}
	if str, ok := v.(string); ok {
		if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(str) {
			fail("%q does not match %s", str, p)
		}
		if n, ok := s["minLength"].(float64); ok && float64(len(str)) < n {
			fail("shorter than %v", n)
		}
	}
	if n, ok := s["minimum"].(float64); ok {
		if f, isNum := number(v); isNum && f < n {
			fail("%v below minimum %v", v, n)
		}
	}
	if obj, ok := v.(map[string]any); ok {
		props, _ := s["properties"].(map[string]any)
		for _, r := range asStrings(s["required"]) {
			if _, ok := obj[r]; !ok {
				fail("missing %q", r)
			}
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ps, known := props[k].(map[string]any)
			if !known {
				if s["additionalProperties"] == false {
					fail("unknown property %q", k)
				}
				continue
			}
			errs = append(errs, validate(root, ps, obj[k], at+"."+k)...)
		}
	}
	if list, ok := v.([]any); ok {
		if n, ok := s["minItems"].(float64); ok && float64(len(list)) < n {
			fail("fewer than %v items", n)
		}
		if s["uniqueItems"] == true {
			seen := map[string]bool{}
			for _, it := range list {
				if k := fmt.Sprint(it); seen[k] {
					fail("%s twice", k)
				} else {
					seen[k] = true
				}
			}
		}
		if items, ok := s["items"].(map[string]any); ok {
			for i, it := range list {
				errs = append(errs, validate(root, items, it, fmt.Sprintf("%s[%d]", at, i))...)
			}
		}
	}
	if cond, ok := s["if"].(map[string]any); ok && len(validate(root, cond, v, at)) == 0 {
		if then, ok := s["then"].(map[string]any); ok {
			errs = append(errs, validate(root, then, v, at)...)
		}
	}
	if not, ok := s["not"].(map[string]any); ok && len(validate(root, not, v, at)) == 0 {
		fail("matches a schema it must not (%s)", mustJSONString(not))
	}
	return errs
}

func mustJSONString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func hasType(v any, typ string) bool {
	switch typ {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "integer":
		_, ok := v.(int)
		return ok
	case "number":
		_, ok := number(v)
		return ok
	}
	return false
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

func asStrings(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, x := range list {
		out = append(out, fmt.Sprint(x))
	}
	return out
}
