package change

import (
	"encoding/json"
	"sort"
)

// SpecJSONSchema returns the JSON Schema (draft 2020-12) of the change spec
// format, built from SpecKinds so the schema and the reader cannot disagree.
func SpecJSONSchema() []byte {
	str := map[string]any{"type": "string", "minLength": 1}
	target := map[string]any{
		"type": "object", "additionalProperties": false,
		"required":   []string{"name", "type", "up"},
		"properties": map[string]any{"name": str, "type": str, "up": str},
	}
	props := map[string]any{
		"kind":        map[string]any{"enum": specKindNames()},
		"table":       map[string]any{"type": "string", "description": "table, optionally schema-qualified"},
		"column":      str,
		"new_name":    str,
		"type":        map[string]any{"type": "string", "description": "SQL type of the new column"},
		"up":          map[string]any{"type": "string", "description": "SQL expression computing the new shape from the old columns"},
		"down":        map[string]any{"type": "string", "description": "SQL expression computing the old column from the new shape"},
		"fill":        map[string]any{"type": "string", "description": "SQL expression for rows that hold NULL"},
		"into":        map[string]any{"type": "array", "minItems": 1, "items": target},
		"from":        map[string]any{"type": "array", "minItems": 2, "items": str},
		"down_each":   map[string]any{"type": "object", "additionalProperties": str, "description": "old column -> SQL expression over the new column"},
		"enum":        str,
		"value":       str,
		"replacement": str,
	}
	var oneOf []any
	kinds := specKindNames()
	sort.Strings(kinds)
	for _, k := range kinds {
		oneOf = append(oneOf, map[string]any{
			"if":   map[string]any{"properties": map[string]any{"kind": map[string]any{"const": k}}},
			"then": map[string]any{"required": append([]string{"kind"}, SpecKinds[Kind(k)]...)},
		})
	}
	schema := map[string]any{
		"$schema":              "https://json-schema.org/draft/2020-12/schema",
		"$id":                  "https://github.com/phasekit/phasekit/docs/change-spec.schema.json",
		"title":                "phasekit change spec",
		"type":                 "object",
		"additionalProperties": false,
		"required":             []string{"changes"},
		"properties": map[string]any{
			"changes": map[string]any{
				"type":     "array",
				"minItems": 1,
				"items": map[string]any{
					"type": "object", "additionalProperties": false, "required": []string{"kind"},
					"properties": props,
					"allOf":      oneOf,
				},
			},
		},
	}
	b, _ := json.MarshalIndent(schema, "", "  ")
	return append(b, '\n')
}
