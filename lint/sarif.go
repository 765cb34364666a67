package lint

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"sort"
	"strings"

	"github.com/phasekit/phasekit/phases"
)

// SARIF 2.1.0, the subset code scanning tools read. The structs follow the
// OASIS schema's property names.
const (
	sarifSchema    = "https://json.schemastore.org/sarif-2.1.0.json"
	sarifVersion   = "2.1.0"
	informationURI = "https://github.com/phasekit/phasekit"
)

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool        sarifTool         `json:"tool"`
	Invocations []sarifInvocation `json:"invocations,omitempty"`
	Results     []sarifResult     `json:"results"`
	ColumnKind  string            `json:"columnKind"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID                   string            `json:"id"`
	ShortDescription     sarifText         `json:"shortDescription"`
	Help                 sarifText         `json:"help"`
	DefaultConfiguration sarifRuleDefaults `json:"defaultConfiguration"`
}

type sarifRuleDefaults struct {
	Level string `json:"level"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifResult struct {
	RuleID       string             `json:"ruleId"`
	RuleIndex    int                `json:"ruleIndex"`
	Level        string             `json:"level"`
	Message      sarifText          `json:"message"`
	Locations    []sarifLocation    `json:"locations"`
	Suppressions []sarifSuppression `json:"suppressions,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysicalLocation `json:"physicalLocation"`
}

type sarifPhysicalLocation struct {
	ArtifactLocation sarifArtifactLoc `json:"artifactLocation"`
	Region           *sarifRegion     `json:"region,omitempty"`
}

type sarifArtifactLoc struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine   int `json:"startLine"`
	StartColumn int `json:"startColumn,omitempty"`
}

type sarifSuppression struct {
	Kind          string `json:"kind"`
	Justification string `json:"justification"`
}

type sarifInvocation struct {
	ExecutionSuccessful        bool                `json:"executionSuccessful"`
	ToolExecutionNotifications []sarifNotification `json:"toolExecutionNotifications,omitempty"`
}

type sarifNotification struct {
	Level     string          `json:"level"`
	Message   sarifText       `json:"message"`
	Locations []sarifLocation `json:"locations,omitempty"`
}

// WriteSARIF writes the result as a SARIF 2.1.0 log for code scanning.
// Silenced findings are results with an inSource suppression carrying the
// reason; data checks that could not run are tool execution notifications,
// since they are not findings about the code.
func WriteSARIF(w io.Writer, r *Result) error {
	rules, index := sarifRules()
	active, silenced, skipped := r.items()
	run := sarifRun{
		Tool:       sarifTool{Driver: sarifDriver{Name: "phasekit", InformationURI: informationURI, Rules: rules}},
		Results:    []sarifResult{},
		ColumnKind: "unicodeCodePoints", // change.Pos counts characters, not UTF-16 units
	}
	add := func(it item, suppressed bool) {
		res := sarifResult{
			RuleID:    it.rule,
			RuleIndex: index[it.rule],
			Level:     sarifLevel(it.severity),
			Message:   sarifText{Text: sarifMessage(it)},
			Locations: []sarifLocation{sarifLoc(it)},
		}
		if suppressed {
			res.Suppressions = []sarifSuppression{{Kind: "inSource", Justification: it.allowed}}
		}
		run.Results = append(run.Results, res)
	}
	for _, it := range active {
		add(it, false)
	}
	for _, it := range silenced {
		add(it, true)
	}
	if len(skipped) > 0 {
		inv := sarifInvocation{ExecutionSuccessful: true}
		for _, it := range skipped {
			inv.ToolExecutionNotifications = append(inv.ToolExecutionNotifications, sarifNotification{
				Level: "note", Message: sarifText{Text: it.message}, Locations: []sarifLocation{sarifLoc(it)},
			})
		}
		run.Invocations = []sarifInvocation{inv}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(sarifLog{Schema: sarifSchema, Version: sarifVersion, Runs: []sarifRun{run}}); err != nil {
		return fmt.Errorf("write lint result as SARIF: %w", err)
	}
	return nil
}

// sarifRules lists every static and data rule by id, so that a viewer can
// describe a rule even when this run found nothing for it.
func sarifRules() ([]sarifRule, map[string]int) {
	all := make([]phases.Rule, 0, len(phases.Rules)+len(DataRules))
	for _, r := range phases.Rules {
		all = append(all, r)
	}
	for _, r := range DataRules {
		all = append(all, r)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	rules := make([]sarifRule, len(all))
	index := make(map[string]int, len(all))
	for i, r := range all {
		rules[i] = sarifRule{
			ID:                   r.ID,
			ShortDescription:     sarifText{Text: r.Summary},
			Help:                 sarifText{Text: r.Recipe},
			DefaultConfiguration: sarifRuleDefaults{Level: sarifLevel(r.Severity)},
		}
		index[r.ID] = i
	}
	return rules, index
}

func sarifLevel(s phases.Severity) string {
	switch s {
	case phases.Error:
		return "error"
	case phases.Warning:
		return "warning"
	}
	return "note"
}

func sarifMessage(it item) string {
	msg := it.message
	if len(it.sample) > 0 {
		msg += fmt.Sprintf(" (sample %s: %s)", it.sampleOf, strings.Join(it.sample, ", "))
	}
	return msg
}

func sarifLoc(it item) sarifLocation {
	loc := sarifPhysicalLocation{ArtifactLocation: sarifArtifactLoc{URI: fileURI(it.pos.File)}}
	// SARIF lines start at 1; a position without a line names the file only.
	if it.pos.Line > 0 {
		loc.Region = &sarifRegion{StartLine: it.pos.Line, StartColumn: it.pos.Col}
	}
	return sarifLocation{PhysicalLocation: loc}
}

// fileURI turns a path into a URI reference: relative paths stay relative
// (code scanning resolves them against the repository root), absolute ones
// become file URIs; both are percent-encoded.
func fileURI(path string) string {
	p := filepath.ToSlash(path)
	if filepath.IsAbs(path) {
		if !strings.HasPrefix(p, "/") { // a Windows drive letter
			p = "/" + p
		}
		return (&url.URL{Scheme: "file", Path: p}).String()
	}
	return (&url.URL{Path: p}).String()
}
