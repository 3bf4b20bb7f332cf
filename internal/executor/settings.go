package executor

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/batchy/batchy/internal/batch"
)

// settings reads an executor's settings, remembering which keys were read so that done can
// reject the others: a typo (comand, timout) must fail at load time, not be ignored at 3 a.m.
type settings struct {
	typ   string
	m     map[string]any
	known []string
}

func newSettings(typ string, m map[string]any, known ...string) *settings {
	return &settings{typ: typ, m: m, known: known}
}

// errorf returns an EINVALID error about one setting.
func (s *settings) errorf(key, format string, args ...any) error {
	return batch.Errorf(batch.EINVALID, "%s: setting %s %s", s.typ, key, fmt.Sprintf(format, args...))
}

// done rejects every key that is not a known setting.
func (s *settings) done() error {
	var unknown []string
	for k := range s.m {
		if !contains(s.known, k) {
			unknown = append(unknown, strconv.Quote(clip(k)))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	known := "it takes no settings"
	if len(s.known) > 0 {
		known = "known: " + strings.Join(s.known, ", ")
	}
	word := "setting"
	if len(unknown) > 1 {
		word = "settings"
	}
	return batch.Errorf(batch.EINVALID, "%s: unknown %s %s (%s)", s.typ, word, strings.Join(unknown, ", "), known)
}

func (s *settings) get(key string) (any, bool) {
	v, ok := s.m[key]
	if ok && v == nil {
		return nil, false // key: with no value, as if absent
	}
	return v, ok
}

func (s *settings) str(key string) (string, bool, error) {
	v, ok := s.get(key)
	if !ok {
		return "", false, nil
	}
	str, isStr := v.(string)
	if !isStr {
		return "", false, s.errorf(key, "must be a string, not %s", kind(v))
	}
	return str, true, nil
}

func (s *settings) boolean(key string) (bool, error) {
	v, ok := s.get(key)
	if !ok {
		return false, nil
	}
	b, isBool := v.(bool)
	if !isBool {
		return false, s.errorf(key, "must be true or false, not %s", kind(v))
	}
	return b, nil
}

// duration reads a Go duration string ("90s", "1h30m"); zero when absent. Bare numbers are
// rejected: "timeout: 30" could mean seconds or minutes.
func (s *settings) duration(key string) (time.Duration, error) {
	v, ok := s.get(key)
	if !ok {
		return 0, nil
	}
	str, isStr := v.(string)
	if !isStr {
		return 0, s.errorf(key, "must be a duration such as \"90s\" or \"1h30m\", not %s", kind(v))
	}
	d, err := time.ParseDuration(str)
	if err != nil {
		return 0, s.errorf(key, "%q is not a duration such as \"90s\" or \"1h30m\"", clip(str))
	}
	if d <= 0 {
		return 0, s.errorf(key, "%q must be positive", clip(str))
	}
	return d, nil
}

// stringMap reads a map whose values are scalars, stringified (numbers as written, booleans as
// true/false, null as "").
func (s *settings) stringMap(key string) (map[string]string, error) {
	v, ok := s.get(key)
	if !ok {
		return nil, nil
	}
	m, isMap := v.(map[string]any)
	if !isMap {
		return nil, s.errorf(key, "must be a map of names to values, not %s", kind(v))
	}
	out := make(map[string]string, len(m))
	for k, val := range m {
		if val == nil {
			out[k] = ""
			continue
		}
		str, ok := scalarString(val)
		if !ok {
			return nil, s.errorf(key, "%q must be a string, number or boolean, not %s", clip(k), kind(val))
		}
		out[k] = str
	}
	return out, nil
}

// scalarString returns a scalar's text: strings as they are, numbers without exponent or
// trailing zeros, booleans as true/false.
func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case json.Number:
		return x.String(), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case int:
		return strconv.Itoa(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case uint64:
		return strconv.FormatUint(x, 10), true
	}
	return "", false
}

// kind names a decoded value's type for error messages.
func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number, float64, int, int64, uint64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "a map"
	}
	return fmt.Sprintf("a %T", v)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// strings reads a list of scalars (or one scalar) as strings; nil when absent.
func (s *settings) strings(key string) ([]string, error) {
	v, ok := s.get(key)
	if !ok {
		return nil, nil
	}
	list, isList := v.([]any)
	if !isList {
		list = []any{v}
	}
	out := make([]string, 0, len(list))
	for _, item := range list {
		str, ok := scalarString(item)
		if !ok {
			return nil, s.errorf(key, "must be a list of strings, not one holding %s", kind(item))
		}
		out = append(out, str)
	}
	return out, nil
}
