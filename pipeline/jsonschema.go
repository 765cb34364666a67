package pipeline

import (
	"encoding/json"
	"fmt"
	"slices"
)

// durationPattern matches what time.ParseDuration reads (without a sign):
// 30m, 2h, 1h30m, 90s.
const durationPattern = `^([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h))*$`

// JSONSchema returns the JSON Schema (draft 2020-12) of the pipeline file
// format, for editors. Its properties come from the key lists Parse checks
// against, so the two cannot disagree; what a schema cannot say (a bake
// shorter than an alarm's window, zeta after prod) only Parse refuses.
func JSONSchema() ([]byte, error) {
	str := map[string]any{"type": "string", "minLength": 1}
	label := map[string]any{"type": "string", "pattern": `^[!-~]+$`}
	dur := map[string]any{"$ref": "#/$defs/duration"}
	object := func(keys, required []string, props map[string]any) (map[string]any, error) {
		for _, k := range keys {
			if props[k] == nil {
				return nil, fmt.Errorf("pipeline schema: no property for key %q", k)
			}
		}
		for k := range props {
			if !slices.Contains(keys, k) {
				return nil, fmt.Errorf("pipeline schema: property %q is not a key Parse reads", k)
			}
		}
		return map[string]any{"type": "object", "additionalProperties": false, "required": required, "properties": props}, nil
	}
	top, err := object(topKeys, []string{"app", "stages"}, map[string]any{
		"app":    with(label, "the application's name; instances connect with application_name app/version"),
		"old":    with(label, "label of N, the version running before the change (default N)"),
		"new":    with(label, "label of N+1, the version that needs the change (default N+1)"),
		"stages": map[string]any{"type": "array", "minItems": 1, "items": map[string]any{"$ref": "#/$defs/stage"}, "description": "the stages N+1 goes through, in order; at least one prod"},
		"alarms": map[string]any{"type": "array", "items": map[string]any{"$ref": "#/$defs/alarm"}, "description": "metrics that must not breach while N+1 bakes"},
	})
	if err != nil {
		return nil, err
	}
	stage, err := object(stageKeys, []string{"name", "kind"}, map[string]any{
		"name":            str,
		"kind":            map[string]any{"enum": kindNames()},
		"bake":            with(dur, "how long N+1 bakes in the stage, or in each of its waves"),
		"first_wave_bake": with(dur, "the first wave's bake when the wave sets none"),
		"waves":           map[string]any{"type": "array", "minItems": 1, "items": map[string]any{"$ref": "#/$defs/wave"}},
	})
	if err != nil {
		return nil, err
	}
	// A stage without waves needs its own bake; first_wave_bake needs waves.
	stage["if"] = map[string]any{"not": map[string]any{"required": []string{"waves"}}}
	stage["then"] = map[string]any{"required": []string{"bake"}, "not": map[string]any{"required": []string{"first_wave_bake"}}}
	wave, err := object(waveKeys, []string{"name", "targets"}, map[string]any{
		"name":    str,
		"targets": map[string]any{"type": "array", "minItems": 1, "uniqueItems": true, "items": str},
		"bake":    with(dur, "how long N+1 bakes in this wave before the next"),
	})
	if err != nil {
		return nil, err
	}
	alarm, err := object(alarmKeys, alarmKeys, map[string]any{
		"name":                str,
		"query":               with(str, "PromQL giving one number"),
		"comparison":          map[string]any{"enum": Comparisons, "description": "breaching when value <comparison> threshold; quote it in YAML"},
		"threshold":           map[string]any{"type": "number"},
		"datapoints_to_alarm": map[string]any{"type": "integer", "minimum": 1, "description": "M: breaching datapoints that fire the alarm"},
		"evaluation_periods":  map[string]any{"type": "integer", "minimum": 1, "description": "N: the alarm looks at the last N datapoints"},
		"period":              with(dur, "one datapoint per period; the evaluation window is evaluation_periods * period"),
	})
	if err != nil {
		return nil, err
	}
	schema := map[string]any{
		"$schema": "https://json-schema.org/draft/2020-12/schema",
		"$id":     "https://github.com/phasekit/phasekit/docs/pipeline.schema.json",
		"title":   "phasekit deploy pipeline",
		"$defs": map[string]any{
			"duration": map[string]any{"type": "string", "pattern": durationPattern, "description": "a Go duration: 30m, 2h, 1h30m"},
			"stage":    stage,
			"wave":     wave,
			"alarm":    alarm,
		},
	}
	for k, v := range top {
		schema[k] = v
	}
	b, err := json.MarshalIndent(schema, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("pipeline schema: %w", err)
	}
	return append(b, '\n'), nil
}

// with returns a copy of a schema with a description.
func with(s map[string]any, description string) map[string]any {
	out := map[string]any{"description": description}
	for k, v := range s {
		out[k] = v
	}
	return out
}
