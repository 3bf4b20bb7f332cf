package batch_test

import (
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
)

func TestKeepOutcomes(t *testing.T) {
	at := func(h int) *time.Time { v := time.Date(2026, 1, 1, h, 0, 0, 0, time.UTC); return &v }
	tests := []struct {
		name                  string
		s, kept               batch.Summary
		wantSuccess, wantFail *time.Time
	}{
		{"nothing kept", batch.Summary{LastFailure: at(3)}, batch.Summary{}, nil, at(3)},
		{"an earlier success kept", batch.Summary{LastFailure: at(3)}, batch.Summary{LastSuccess: at(1)}, at(1), at(3)},
		{"the later of each", batch.Summary{LastSuccess: at(5), LastFailure: at(2)}, batch.Summary{LastSuccess: at(4), LastFailure: at(3)}, at(5), at(3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.s
			s.KeepOutcomes(&tt.kept)
			eq := func(a, b *time.Time) bool { return (a == nil) == (b == nil) && (a == nil || a.Equal(*b)) }
			if !eq(s.LastSuccess, tt.wantSuccess) || !eq(s.LastFailure, tt.wantFail) {
				t.Errorf("got success %v failure %v, want %v %v", s.LastSuccess, s.LastFailure, tt.wantSuccess, tt.wantFail)
			}
		})
	}
	var s batch.Summary
	s.KeepOutcomes(nil) // nothing kept: unchanged
	if s.LastSuccess != nil || s.LastFailure != nil {
		t.Errorf("KeepOutcomes(nil) changed the summary: %+v", s)
	}
}
