package rdb

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// The previous format of the embedded store's files, read once to convert them (convertV1): the
// data file held every key as JSON, rewritten after each change; the event streams were in
// <name>.events.json, written every few seconds.

// dataFile is the previous data file's content: every key with its type and value.
type dataFile struct {
	Version int                `json:"version"`
	SavedAt time.Time          `json:"saved_at"`
	Keys    map[string]dataKey `json:"keys"`
}

type dataKey struct {
	Type  string   `json:"type"`
	Value []string `json:"value"` // hash: field, value...; zset: member, score...; set, list: members; string: [value]
}

// eventsFile is the previous events file's content.
type eventsFile struct {
	Version int                                `json:"version"`
	SavedAt time.Time                          `json:"saved_at"`
	Streams map[string][]miniredis.StreamEntry `json:"streams"`
}

// eventsPathV1 is the previous events file next to a data file: data/batchy.json →
// data/batchy.events.json.
func eventsPathV1(dataFile string) string {
	return strings.TrimSuffix(dataFile, ".json") + ".events.json"
}

// loadV1 fills srv from a data file of the previous format (data, read from path): every key
// in one JSON document.
func loadV1(srv *miniredis.Miniredis, path string, data []byte) error {
	var df dataFile
	if err := json.Unmarshal(data, &df); err != nil {
		return fmt.Errorf("rdb: data file %s is not valid (%v): restore it from a backup or move it away", path, err)
	}
	if df.Version != 1 {
		return fmt.Errorf("rdb: data file %s has version %d, this batchy reads version 1", path, df.Version)
	}
	for key, k := range df.Keys {
		switch k.Type {
		case "hash":
			srv.HSet(key, k.Value...)
		case "zset":
			for i := 0; i+1 < len(k.Value); i += 2 {
				score, err := strconv.ParseFloat(k.Value[i+1], 64)
				if err != nil {
					return fmt.Errorf("rdb: data file %s: key %s: bad score %q", path, key, k.Value[i+1])
				}
				srv.ZAdd(key, score, k.Value[i])
			}
		case "set":
			srv.SAdd(key, k.Value...)
		case "list":
			srv.RPush(key, k.Value...)
		case "string":
			if len(k.Value) == 1 {
				srv.Set(key, k.Value[0])
			}
		default:
			return fmt.Errorf("rdb: data file %s: key %s has unknown type %q", path, key, k.Type)
		}
	}
	return nil
}

// loadEventsV1 fills srv's streams from the events file at path; a missing file is no events.
func loadEventsV1(srv *miniredis.Miniredis, path string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("rdb: reading events file: %w", err)
	}
	var ef eventsFile
	if err := json.Unmarshal(data, &ef); err != nil || ef.Version != 1 {
		return fmt.Errorf("rdb: events file %s is not valid (%v): move it away to start without past events", path, err)
	}
	for k, entries := range ef.Streams {
		for _, en := range entries {
			if _, err := srv.XAdd(k, en.ID, en.Values); err != nil {
				return fmt.Errorf("rdb: events file %s: stream %s entry %s: %v", path, k, en.ID, err)
			}
		}
	}
	return nil
}
