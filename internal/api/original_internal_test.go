package api

import (
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/batchy/batchy/internal/batch"
)

// TestWriteJobsAsGin checks that writeJobs answers the bytes and headers c.JSON answers.
func TestWriteJobsAsGin(t *testing.T) {
	values := map[string]string{
		"plain":               `"hello"`,
		"quote in string":     `"a\"b c"`,
		"backslash at end":    `"a\\"`,
		"space in array":      `[1, 2]`,
		"newline in object":   "{\"a\":\n1}",
		"html":                `"<b>&amp;</b>"`,
		"line separator":      "\"a\u2028b\"",
		"other non-ASCII":     `"é"`,
		"number":              `12345678901234567890123`,
		"escaped space":       `"a\u0020b"`,
		"space after string":  `["a" ,1]`,
		"nested":              `{"k":[1,"2",{"x":null}]}`,
		"escaped html":        `"\u003c"`,
		"tab inside a string": "\"a\tb\"",
	}
	for name, v := range values {
		t.Run(name, func(t *testing.T) {
			jobs := batch.Jobs{{Name: "job1", Fields: batch.Fields{"status": json.RawMessage(`"open"`), "v": json.RawMessage(v)}}, {Name: "job2", Fields: batch.Fields{}}}
			want := httptest.NewRecorder()
			c, _ := gin.CreateTestContext(want)
			c.JSON(200, jobs)
			got := httptest.NewRecorder()
			c, _ = gin.CreateTestContext(got)
			writeJobs(c, jobs)
			if got.Body.String() != want.Body.String() {
				t.Errorf("body = %s, want %s", got.Body, want.Body)
			}
			if g, w := got.Header().Get("Content-Type"), want.Header().Get("Content-Type"); g != w {
				t.Errorf("Content-Type = %q, want %q", g, w)
			}
		})
	}
}
