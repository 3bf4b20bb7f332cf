package batch_test

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/batchy/batchy/internal/batch"
)

func TestErrorCodeAndMessage(t *testing.T) {
	invalid := batch.Errorf(batch.EINVALID, "status %q is bad", "x")
	withCause := &batch.Error{Code: batch.EUNAVAILABLE, Message: "the store cannot be reached", Cause: errors.New("dial tcp 10.0.0.1:6379: refused")}
	tests := []struct {
		name     string
		err      error
		wantCode string
		wantMsg  string
	}{
		{"nil", nil, "", ""},
		{"batch error", invalid, batch.EINVALID, `status "x" is bad`},
		{"wrapped batch error", fmt.Errorf("rdb.Open: %w", batch.Errorf(batch.ENOTFOUND, "workflow wf1 not found")), batch.ENOTFOUND, "workflow wf1 not found"},
		{"cause is not shown", withCause, batch.EUNAVAILABLE, "the store cannot be reached"},
		{"plain error is internal", errors.New("dial tcp 10.0.0.1:6379: connection refused"), batch.EINTERNAL, "internal error"},
		{"wrapped plain error is internal", fmt.Errorf("config.LoadFile: %w", io.ErrUnexpectedEOF), batch.EINTERNAL, "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := batch.ErrorCode(tt.err); got != tt.wantCode {
				t.Errorf("ErrorCode = %q, want %q", got, tt.wantCode)
			}
			if got := batch.ErrorMessage(tt.err); got != tt.wantMsg {
				t.Errorf("ErrorMessage = %q, want %q", got, tt.wantMsg)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	cause := errors.New("boom")
	tests := []struct {
		name string
		err  *batch.Error
		want string
	}{
		{"without cause", batch.Errorf(batch.ECONFLICT, "job %s is not open", "job1"), "conflict: job job1 is not open"},
		{"with cause", &batch.Error{Code: batch.EINTERNAL, Message: "open failed", Cause: cause}, "internal: open failed: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
			if tt.err.Cause != nil && !errors.Is(tt.err, tt.err.Cause) {
				t.Errorf("errors.Is(err, cause) = false, want true")
			}
		})
	}
}
