// Package config reads workflow files (cfg/<wf>.yaml) into batch.Workflow values, validating every
// special field and guarding against oversized, too deep or alias-bomb documents.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/format"
)

// Limits bound what a workflow file may cost to read.
type Limits struct {
	// MaxBytes is the largest file accepted; zero means 1 MiB.
	MaxBytes int64
	// MaxDepth is the deepest nesting of maps and lists; zero means 32.
	MaxDepth int
	// MaxNodes is the most YAML nodes, counting each alias as the nodes it expands to; zero means
	// 100,000 (an alias bomb expands to billions).
	MaxNodes int
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes == 0 {
		l.MaxBytes = 1 << 20
	}
	if l.MaxDepth == 0 {
		l.MaxDepth = 32
	}
	if l.MaxNodes == 0 {
		l.MaxNodes = 100_000
	}
	return l
}

// Extensions are the file name endings tried, in order, for a workflow's file.
var Extensions = []string{".yaml", ".yml"}

// Path returns the file that defines workflow name in dir, ENOTFOUND if there is none.
func Path(dir, name string) (string, error) {
	if err := batch.CheckName("workflow", name); err != nil {
		return "", err
	}
	for _, ext := range Extensions {
		p := filepath.Join(dir, name+ext)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", batch.Errorf(batch.ENOTFOUND, "workflow %q has no configuration file %s in the configuration directory", name, name+".yaml")
}

// LoadFile reads and validates the workflow called name from dir.
func LoadFile(dir, name string, lim Limits) (*batch.Workflow, error) {
	p, err := Path(dir, name)
	if err != nil {
		return nil, err
	}
	// Non-blocking, so that a FIFO in the directory cannot hold the request: only a regular file is
	// read.
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("config.LoadFile: %w", err)
	}
	defer f.Close()
	if info, err := f.Stat(); err != nil || !info.Mode().IsRegular() {
		return nil, batch.Errorf(batch.EINVALID, "workflow %q: %s in the configuration directory is not a regular file", name, filepath.Base(p))
	}
	lim = lim.withDefaults()
	data, err := io.ReadAll(io.LimitReader(f, lim.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config.LoadFile: %w", err)
	}
	return Parse(name, data, lim)
}

// List returns the names of the workflows defined in dir, sorted; files whose names are not valid
// workflow names are left out.
func List(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, batch.Errorf(batch.ENOTFOUND, "configuration directory %s does not exist", dir)
		}
		return nil, fmt.Errorf("config.List: %w", err)
	}
	seen := map[string]bool{}
	var names []string
	for _, e := range entries {
		for _, ext := range Extensions {
			name, ok := strings.CutSuffix(e.Name(), ext)
			if ok && !e.IsDir() && batch.ValidName(name) && !seen[name] {
				seen[name] = true
				names = append(names, name)
			}
		}
	}
	sort.Strings(names)
	return names, nil
}

// Parse reads a workflow file's content.
func Parse(name string, data []byte, lim Limits) (*batch.Workflow, error) {
	if err := batch.CheckName("workflow", name); err != nil {
		return nil, err
	}
	lim = lim.withDefaults()
	if int64(len(data)) > lim.MaxBytes {
		return nil, batch.Errorf(batch.ETOOLARGE, "workflow %s: file is larger than %d bytes", name, lim.MaxBytes)
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, batch.Errorf(batch.EINVALID, "workflow %s: the file defines no jobs", name)
		}
		return nil, batch.Errorf(batch.EINVALID, "workflow %s: %v", name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, batch.Errorf(batch.EINVALID, "workflow %s: the file must hold one YAML document", name)
	}
	if err := checkSize(&doc, lim); err != nil {
		return nil, batch.Errorf(batch.ETOOLARGE, "workflow %s: %v", name, err)
	}
	datesAsText(&doc)
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, batch.Errorf(batch.EINVALID, "workflow %s: the file must be a map of job names to parameter maps", name)
	}
	wf := &batch.Workflow{Name: name}
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		key, val := root.Content[i], root.Content[i+1]
		jobName := key.Value
		if key.Kind != yaml.ScalarNode {
			return nil, batch.Errorf(batch.EINVALID, "workflow %s: line %d: a job name must be a plain name", name, key.Line)
		}
		if seen[jobName] {
			return nil, batch.Errorf(batch.EINVALID, "workflow %s: job %q is defined twice", name, jobName)
		}
		seen[jobName] = true
		if jobName == batch.SettingsKey {
			if err := parseSettings(data, &wf.Settings); err != nil {
				return nil, batch.Errorf(batch.EINVALID, "workflow %s: settings (%s:): %v", name, batch.SettingsKey, err)
			}
			continue
		}
		if err := batch.CheckName("job", jobName); err != nil {
			return nil, batch.Errorf(batch.EINVALID, "workflow %s: %s", name, batch.ErrorMessage(err))
		}
		fields, err := parseJob(val)
		if err != nil {
			return nil, batch.Errorf(batch.EINVALID, "workflow %s: job %s: %v", name, jobName, err)
		}
		wf.Jobs = append(wf.Jobs, batch.Job{Name: jobName, Fields: fields})
	}
	if len(wf.Jobs) == 0 {
		return nil, batch.Errorf(batch.EINVALID, "workflow %s: the file defines no jobs", name)
	}
	if err := checkJobLinks(wf); err != nil {
		return nil, batch.Errorf(batch.EINVALID, "workflow %s: %v", name, err)
	}
	// Names that collide in env or infa output would make one job's value silently replace
	// another's in an ETL's parameters.
	if err := format.CheckNames(wf.Jobs); err != nil {
		return nil, batch.Errorf(batch.EINVALID, "workflow %s: %s", name, batch.ErrorMessage(err))
	}
	return wf, nil
}

// parseSettings reads the settings under the reserved key from the whole file (already checked by
// checkSize), strictly: decoding the file itself keeps the lines of errors right and lets the
// settings use anchors defined elsewhere in it.
func parseSettings(data []byte, s *batch.Settings) error {
	var doc struct {
		Settings batch.Settings       `yaml:"batchy"`
		Jobs     map[string]yaml.Node `yaml:",inline"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			msg := strings.Join(te.Errors, "; ")
			msg = strings.ReplaceAll(msg, "not found in type batch.Settings", "is not a setting (\"batchy\" is the reserved key for workflow settings, not a job name)")
			msg = strings.ReplaceAll(msg, "not found in type batch.KeepRuns", "is not a keep_runs setting (succeeded, failed)")
			return errors.New(strings.ReplaceAll(msg, "not found in type batch.Retries", "is not a retries setting"))
		}
		return err
	}
	*s = doc.Settings
	return checkSettings(s)
}

// checkSettings validates what can be checked without the scheduler: time zone, targets, enums,
// numbers. The cron expression and the jobs' run: settings are checked by the scheduler's
// Validate, which knows the parser and the executors.
func checkSettings(s *batch.Settings) error {
	if s.Timezone != "" {
		if _, err := time.LoadLocation(s.Timezone); err != nil {
			return fmt.Errorf("timezone %q is not a known time zone", s.Timezone)
		}
	}
	for _, a := range s.After {
		if _, err := batch.ParseTarget(a); err != nil {
			return fmt.Errorf("after: %s", batch.ErrorMessage(err))
		}
	}
	switch s.Concurrency {
	case "", "forbid", "replace", "allow", "queue":
	default:
		return fmt.Errorf("concurrency %q must be forbid, replace, allow or queue", s.Concurrency)
	}
	if k := s.KeepRuns; k != nil && (k.Succeeded < 0 || k.Succeeded > 1000 || k.Failed < 0 || k.Failed > 1000) {
		return fmt.Errorf("keep_runs: succeeded and failed must be from 1 to 1000 (absent: no own limit)")
	}
	if s.MaxQueued != 0 && s.Concurrency != "queue" {
		return fmt.Errorf("max_queued needs concurrency: queue")
	}
	if s.MaxQueued < 0 || s.MaxQueued > 1000 {
		return fmt.Errorf("max_queued %d must be from 1 to 1000", s.MaxQueued)
	}
	switch s.Catchup {
	case "", "none", "latest", "all":
	default:
		return fmt.Errorf("catchup %q must be none, latest or all", s.Catchup)
	}
	switch s.Window {
	case "":
	case batch.WindowSchedule:
		if s.Schedule == "" {
			return fmt.Errorf("window: schedule needs a schedule: its windows are the intervals between fire times")
		}
	default:
		return fmt.Errorf("window %q must be schedule (or absent: from the last success to now)", s.Window)
	}
	switch s.AlertOn {
	case "", batch.AlertOnFinal, batch.AlertOnEveryAttempt:
	default:
		return fmt.Errorf("alert_on %q must be final or every_attempt", s.AlertOn)
	}
	if s.Deadline != "" {
		if _, _, ok := batch.ParseClock(s.Deadline); !ok {
			return fmt.Errorf("deadline %q must be a time of day such as 06:00", s.Deadline)
		}
	}
	return s.Retries.Check()
}

// checkJobLinks validates the jobs' needs: names of other jobs of the workflow, without cycles,
// and the shape of run: (a map with a type).
func checkJobLinks(wf *batch.Workflow) error {
	needs := map[string][]string{}
	for _, j := range wf.Jobs {
		if raw, ok := j.Fields[batch.FieldRun]; ok {
			var run map[string]any
			if json.Unmarshal(raw, &run) != nil {
				return fmt.Errorf("job %s: field run must be a map with a type (exec, http or none)", j.Name)
			}
			if t, _ := run["type"].(string); t == "" {
				return fmt.Errorf("job %s: field run needs a type (exec, http or none)", j.Name)
			}
		}
		raw, ok := j.Fields[batch.FieldNeeds]
		if !ok {
			continue
		}
		var list []string
		if json.Unmarshal(raw, &list) != nil {
			return fmt.Errorf("job %s: field needs must be a list of job names", j.Name)
		}
		for _, n := range list {
			if _, ok := wf.Jobs.Get(n); !ok || n == j.Name {
				return fmt.Errorf("job %s: needs %q, which is not another job of this workflow", j.Name, n)
			}
		}
		needs[j.Name] = list
	}
	// A cycle would leave its jobs waiting for each other forever.
	state := map[string]int{} // 0 unvisited, 1 on the path, 2 done
	var visit func(string) error
	visit = func(n string) error {
		switch state[n] {
		case 1:
			return fmt.Errorf("job %s: needs form a cycle", n)
		case 2:
			return nil
		}
		state[n] = 1
		for _, m := range needs[n] {
			if err := visit(m); err != nil {
				return err
			}
		}
		state[n] = 2
		return nil
	}
	for _, j := range wf.Jobs {
		if err := visit(j.Name); err != nil {
			return err
		}
	}
	return nil
}

// parseJob turns a job's parameter map into validated fields.
func parseJob(n *yaml.Node) (batch.Fields, error) {
	fields := batch.Fields{}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return fields, nil // a job listed with no parameters
	}
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: parameters must be a map of field names to values", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		if key.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("line %d: a field name must be a plain name", key.Line)
		}
		name := key.Value
		if name == "<<" {
			return nil, fmt.Errorf("line %d: merge keys (<<) are not supported", key.Line)
		}
		if err := batch.CheckName("field", name); err != nil {
			return nil, errors.New(batch.ErrorMessage(err))
		}
		if _, dup := fields[name]; dup {
			return nil, fmt.Errorf("field %s is defined twice", name)
		}
		raw, err := fieldValue(name, val)
		if err != nil {
			return nil, fmt.Errorf("field %s: %v", name, err)
		}
		fields[name] = raw
	}
	return fields, nil
}

// fieldValue converts one field's YAML value to JSON text, validating special fields.
func fieldValue(name string, n *yaml.Node) (json.RawMessage, error) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!float") && jsonNumber.MatchString(n.Value) {
		// Keep the digits the user wrote: decoding would round 12345678901234567890123 to a float64.
		return checkSpecial(name, json.RawMessage(n.Value), n)
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	v, err := jsonable(v)
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return checkSpecial(name, raw, n)
}

// jsonNumber matches the numbers whose YAML text is also JSON text for the same value (not 017,
// which YAML reads as octal, nor 1_000 or 0x1F).
var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$`)

// datesAsText makes every bare date (2016-01-01) a string, so that it is kept as the text the user
// wrote rather than decoded to a Go time, at any depth. Aliases point into the same tree, so one
// walk covers them.
func datesAsText(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!timestamp" {
		n.Tag = "!!str"
	}
	for _, c := range n.Content {
		datesAsText(c)
	}
}

// jsonable converts a decoded YAML value into one encoding/json can write.
func jsonable(v any) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			c, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			v[k] = c
		}
		return v, nil
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			c, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			m[fmt.Sprint(k)] = c
		}
		return m, nil
	case []any:
		for i, e := range v {
			c, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			v[i] = c
		}
		return v, nil
	case float64:
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return nil, errors.New("infinity and NaN are not supported")
		}
		return v, nil
	case time.Time:
		return batch.FormatTime(v), nil
	}
	return v, nil
}

// checkSpecial validates and normalises the value of a special field; others pass unchanged.
func checkSpecial(name string, raw json.RawMessage, n *yaml.Node) (json.RawMessage, error) {
	f := batch.Fields{name: raw}
	isNull := string(raw) == "null"
	switch {
	case name == batch.FieldStatus:
		s, ok := f.String(name)
		if !ok {
			return nil, fmt.Errorf("must be one of new, open, success, failed, got %s", n.Value)
		}
		st, err := batch.ParseStatus(s)
		if err != nil {
			return nil, errors.New(batch.ErrorMessage(err))
		}
		return json.Marshal(string(st))
	case name == batch.FieldBatchID:
		if v, ok := f.Int(name); !ok || v < 0 {
			return nil, fmt.Errorf("must be a whole number of seconds, got %s", n.Value)
		}
	case batch.IsDateField(name):
		if isNull {
			return raw, nil
		}
		s, ok := f.String(name)
		if !ok {
			return nil, fmt.Errorf("must be a date, got %s", n.Value)
		}
		t, err := batch.ParseTime(s)
		if err != nil {
			return nil, errors.New(batch.ErrorMessage(err))
		}
		return json.Marshal(batch.FormatTime(t))
	case name == batch.FieldReprocessHours:
		if v, ok := f.Float(name); !ok || v < 0 || v > batch.MaxReprocessHours {
			return nil, fmt.Errorf("must be a number of hours from 0 to %d, got %q", batch.MaxReprocessHours, n.Value)
		}
	case name == batch.FieldTruncStart:
		if _, ok := f.Bool(name); !ok {
			return nil, fmt.Errorf("must be true or false, got %q", n.Value)
		}
	case name == batch.FieldInfaSection:
		s, ok := f.String(name)
		if !ok || s == "" || strings.ContainsAny(s, "[]\r\n") {
			return nil, fmt.Errorf("must be a section name without brackets or line breaks, got %q", n.Value)
		}
	case name == batch.FieldBackfill:
		return nil, errors.New("is set by batchy while a backfill batch is open and cannot be configured")
	case name == batch.FieldMetadata:
		return nil, errors.New("is set by batchy from what a close or fail reports and cannot be configured")
	}
	return raw, nil
}

// checkSize rejects documents nested deeper than lim.MaxDepth or larger than lim.MaxNodes nodes,
// counting aliases as what they expand to (memoised, so counting a bomb is itself cheap). An
// alias is as deep as where it is used plus the height of what it points to, so that a chain of
// anchors cannot nest deeper than MaxDepth one alias at a time.
func checkSize(doc *yaml.Node, lim Limits) error {
	type measure struct{ size, height int }
	seen := map[*yaml.Node]measure{}
	var walk func(n *yaml.Node, depth int) (measure, error)
	walk = func(n *yaml.Node, depth int) (measure, error) {
		if depth > lim.MaxDepth {
			return measure{}, fmt.Errorf("line %d: nested deeper than %d levels", n.Line, lim.MaxDepth)
		}
		line := n.Line
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		if m, ok := seen[n]; ok {
			if depth+m.height > lim.MaxDepth {
				return measure{}, fmt.Errorf("line %d: nested deeper than %d levels once aliases are expanded", line, lim.MaxDepth)
			}
			return m, nil
		}
		seen[n] = measure{size: lim.MaxNodes + 1} // a cycle counts as too large
		m := measure{size: 1}
		for _, c := range n.Content {
			cm, err := walk(c, depth+1)
			if err != nil {
				return measure{}, err
			}
			m.size += cm.size
			m.height = max(m.height, cm.height+1)
			if m.size > lim.MaxNodes {
				break
			}
		}
		seen[n] = m
		if m.size > lim.MaxNodes {
			return measure{}, fmt.Errorf("more than %d values once aliases are expanded", lim.MaxNodes)
		}
		return m, nil
	}
	_, err := walk(doc, 0)
	return err
}
