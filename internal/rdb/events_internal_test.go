package rdb

import (
	"slices"
	"strings"
	"testing"
)

// TestChangeFieldsAsStringsFields checks that a change's line splits as strings.Fields splits
// it, the scripts' single spaces and any other spacing alike.
func TestChangeFieldsAsStringsFields(t *testing.T) {
	for _, line := range []string{
		"open 1 job 2 3 4 1",
		"open 1 job 2 3 4 1 extra",
		"open 1 job 2 3 4",
		"open  1 job 2 3 4 1",
		" open 1 job 2 3 4 1 ",
		"open\t1 job 2 3 4 1",
		"open 1 jöb 2 3 4 1",
		"open 1 job 2 3 4 1\u00a0",
		"",
		"-------",
	} {
		want := strings.Fields(line)
		got, ok := changeFields(line)
		if ok != (len(want) == 7) {
			t.Errorf("changeFields(%q) ok = %v, want %v", line, ok, len(want) == 7)
			continue
		}
		if ok && !slices.Equal(got[:], want) {
			t.Errorf("changeFields(%q) = %q, want %q", line, got, want)
		}
	}
}
