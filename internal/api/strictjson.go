package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// strictJSON decodes data into v strictly: unknown fields, trailing data (even a stray "}"), keys
// given twice and keys that name a field only when case is ignored are errors. encoding/json lets
// the last three through: {"reset":true}} would reset, and {"JOBS":[...]} would be read as jobs.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("unexpected data after the JSON value")
	}
	return exactKeys(data, v)
}

// exactKeys checks the keys of the JSON object in data (or of each object in a JSON array) against
// the json names of v's struct type: each must be one of them, exactly, and appear once. Values
// are not looked into: free-form ones (metadata, fields) may hold any keys.
func exactKeys(data []byte, v any) error {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	names := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		names[name] = true
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		return objectKeys(dec, names)
	case json.Delim('['):
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return err
			}
			if tok != json.Delim('{') {
				return nil // not an object: the decoding above already judged it
			}
			if err := objectKeys(dec, names); err != nil {
				return err
			}
		}
	}
	return nil
}

// objectKeys reads the rest of an object whose "{" dec has just read.
func objectKeys(dec *json.Decoder, names map[string]bool) error {
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		if !names[key] {
			return fmt.Errorf("unknown field %q (field names are case-sensitive)", key)
		}
		if seen[key] {
			return fmt.Errorf("field %q is given twice", key)
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	_, err := dec.Token() // the closing "}"
	return err
}
