package batch_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/batch"
)

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"simple", "job1", true},
		{"underscore", "load_orders", true},
		{"dash", "load-orders", true},
		{"dots inside", "wf.v2", true},
		{"leading dot", ".hidden", true},
		{"three dots", "...", true},
		{"upper case", "JOB_1", true},
		{"one character", "a", true},
		{"digits only", "2016", true},
		{"128 characters", strings.Repeat("a", 128), true},
		{"empty", "", false},
		{"dot", ".", false},
		{"dot dot", "..", false},
		{"parent path", "../x", false},
		{"slash", "a/b", false},
		{"backslash", `a\b`, false},
		{"star", "a*", false},
		{"question mark", "a?", false},
		{"brackets", "[a]", false},
		{"space", "a b", false},
		{"trailing newline", "a\n", false},
		{"colon", "a:b", false},
		{"brace (Redis hash tag)", "a{b}", false},
		{"129 characters", strings.Repeat("a", 129), false},
		{"unicode letter", "jöb", false},
		{"unicode digit", "job١", false},
		{"NUL", "a\x00", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := batch.ValidName(tt.in); got != tt.want {
				t.Errorf("ValidName(%q) = %v, want %v", tt.in, got, tt.want)
			}
			err := batch.CheckName("job", tt.in)
			if tt.want {
				if err != nil {
					t.Errorf("CheckName(%q) = %v, want nil", tt.in, err)
				}
				return
			}
			if code := batch.ErrorCode(err); code != batch.EINVALID {
				t.Errorf("CheckName(%q) code = %q, want %q", tt.in, code, batch.EINVALID)
			}
		})
	}
}

func TestCheckNameMessage(t *testing.T) {
	tests := []struct {
		name, kind, in string
		want           []string
	}{
		{"names the kind and quotes the name", "workflow", "a*", []string{"workflow name", `"a*"`}},
		{"escapes control characters", "field", "a\nb", []string{"field name", `"a\nb"`}},
		{"clips long names", "job", strings.Repeat("x", 200), []string{"job name", `"` + strings.Repeat("x", 64) + `..."`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := batch.ErrorMessage(batch.CheckName(tt.kind, tt.in))
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not contain %q", msg, w)
				}
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		in   string
		want batch.Status
	}{
		{"new", batch.StatusNew},
		{"open", batch.StatusOpen},
		{"success", batch.StatusSuccess},
		{"failed", batch.StatusFailed},
		{"failure", batch.StatusFailed},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := batch.ParseStatus(tt.in)
			if err != nil {
				t.Fatalf("ParseStatus(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseStatus(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	for _, in := range []string{"", "running", "Success", "FAILED", " new", "abandoned"} {
		t.Run("invalid "+in, func(t *testing.T) {
			got, err := batch.ParseStatus(in)
			if err == nil {
				t.Fatalf("ParseStatus(%q) = %q, want an error", in, got)
			}
			if code := batch.ErrorCode(err); code != batch.EINVALID {
				t.Errorf("code = %q, want %q", code, batch.EINVALID)
			}
			if msg := batch.ErrorMessage(err); !strings.Contains(msg, `"`+in+`"`) {
				t.Errorf("message %q does not quote %q", msg, in)
			}
		})
	}
}

func TestFieldsStatus(t *testing.T) {
	tests := []struct {
		name   string
		fields string
		want   batch.Status
	}{
		{"success", `{"status":"success"}`, batch.StatusSuccess},
		{"legacy failure", `{"status":"failure"}`, batch.StatusFailed},
		{"absent", `{}`, ""},
		{"not a string", `{"status":1}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mkFields(t, tt.fields).Status(); got != tt.want {
				t.Errorf("Status() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFieldsAccessors(t *testing.T) {
	f := mkFields(t, `{
		"s": "hello",
		"date": "2016-01-01T23:59",
		"bad_date": "tomorrow",
		"n": 2,
		"x": 1.5,
		"big": 12345678901234567890123,
		"t": true,
		"nul": null,
		"list": [1, 2]
	}`)
	t.Run("String", func(t *testing.T) {
		tests := []struct {
			field  string
			want   string
			wantOK bool
		}{
			{"s", "hello", true},
			{"date", "2016-01-01T23:59", true},
			{"n", "", false},
			{"t", "", false},
			{"list", "", false},
			{"absent", "", false},
		}
		for _, tt := range tests {
			t.Run(tt.field, func(t *testing.T) {
				got, ok := f.String(tt.field)
				if got != tt.want || ok != tt.wantOK {
					t.Errorf("String(%q) = %q, %v; want %q, %v", tt.field, got, ok, tt.want, tt.wantOK)
				}
			})
		}
	})
	t.Run("Time", func(t *testing.T) {
		tests := []struct {
			field  string
			want   time.Time
			wantOK bool
		}{
			{"date", utc(2016, 1, 1, 23, 59, 0, 0), true},
			{"bad_date", time.Time{}, false},
			{"s", time.Time{}, false},
			{"n", time.Time{}, false},
			{"nul", time.Time{}, false},
			{"absent", time.Time{}, false},
		}
		for _, tt := range tests {
			t.Run(tt.field, func(t *testing.T) {
				got, ok := f.Time(tt.field)
				if !got.Equal(tt.want) || ok != tt.wantOK {
					t.Errorf("Time(%q) = %v, %v; want %v, %v", tt.field, got, ok, tt.want, tt.wantOK)
				}
			})
		}
	})
	t.Run("Float", func(t *testing.T) {
		tests := []struct {
			field  string
			want   float64
			wantOK bool
		}{
			{"n", 2, true},
			{"x", 1.5, true},
			{"big", 12345678901234567890123, true},
			{"s", 0, false},
			{"t", 0, false},
			{"absent", 0, false},
		}
		for _, tt := range tests {
			t.Run(tt.field, func(t *testing.T) {
				got, ok := f.Float(tt.field)
				if got != tt.want || ok != tt.wantOK {
					t.Errorf("Float(%q) = %v, %v; want %v, %v", tt.field, got, ok, tt.want, tt.wantOK)
				}
			})
		}
	})
	t.Run("Int", func(t *testing.T) {
		tests := []struct {
			field  string
			want   int64
			wantOK bool
		}{
			{"n", 2, true},
			{"x", 0, false},
			{"big", 0, false}, // does not fit in int64
			{"s", 0, false},
			{"absent", 0, false},
		}
		for _, tt := range tests {
			t.Run(tt.field, func(t *testing.T) {
				got, ok := f.Int(tt.field)
				if got != tt.want || ok != tt.wantOK {
					t.Errorf("Int(%q) = %v, %v; want %v, %v", tt.field, got, ok, tt.want, tt.wantOK)
				}
			})
		}
	})
	t.Run("Bool", func(t *testing.T) {
		tests := []struct {
			field  string
			want   bool
			wantOK bool
		}{
			{"t", true, true},
			{"s", false, false},
			{"n", false, false},
			{"absent", false, false},
		}
		for _, tt := range tests {
			t.Run(tt.field, func(t *testing.T) {
				got, ok := f.Bool(tt.field)
				if got != tt.want || ok != tt.wantOK {
					t.Errorf("Bool(%q) = %v, %v; want %v, %v", tt.field, got, ok, tt.want, tt.wantOK)
				}
			})
		}
	})
	t.Run("Names", func(t *testing.T) {
		got := strings.Join(f.Names(), ",")
		want := "bad_date,big,date,list,n,nul,s,t,x"
		if got != want {
			t.Errorf("Names() = %s, want %s", got, want)
		}
	})
}

func TestFieldsMarshalJSON(t *testing.T) {
	tests := []struct {
		name   string
		fields batch.Fields
		want   string
	}{
		{"nil", nil, `{}`},
		{"empty", batch.Fields{}, `{}`},
		{"sorted names", batch.Fields{"z": json.RawMessage(`1`), "a": json.RawMessage(`2`), "m": json.RawMessage(`3`)},
			`{"a":2,"m":3,"z":1}`},
		{"big integer keeps its digits", batch.Fields{"id": json.RawMessage(`12345678901234567890123`)},
			`{"id":12345678901234567890123}`},
		{"number text kept", batch.Fields{"x": json.RawMessage(`2.50`), "y": json.RawMessage(`1e3`)},
			`{"x":2.50,"y":1e3}`},
		{"types kept", batch.Fields{"s": json.RawMessage(`"2016-01-01"`), "b": json.RawMessage(`true`), "n": batch.Null, "o": json.RawMessage(`{"k":[1,"2"]}`)},
			`{"b":true,"n":null,"o":{"k":[1,"2"]},"s":"2016-01-01"}`},
		{"field names escaped", batch.Fields{`a"b`: json.RawMessage(`1`)}, `{"a\"b":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.fields.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("MarshalJSON() = %s, want %s", got, tt.want)
			}
			// Through encoding/json too, as the API writes it.
			viaJSON, err := json.Marshal(tt.fields)
			if err != nil {
				t.Fatalf("json.Marshal: %v", err)
			}
			if string(viaJSON) != tt.want {
				t.Errorf("json.Marshal = %s, want %s", viaJSON, tt.want)
			}
		})
	}
}

// TestFieldNamesQuotedAsJSON checks that names are quoted as encoding/json quotes them, both the
// plain ones MarshalJSON quotes itself and the others.
func TestFieldNamesQuotedAsJSON(t *testing.T) {
	for _, name := range []string{"param1", "batch_end_date", "a b", "a\"b", `a\b`, "a<b>&", "tab\there", "\x7f", "é", "\u2028", "bad\xffutf8", ""} {
		t.Run(name, func(t *testing.T) {
			key, _ := json.Marshal(name)
			want := "{" + string(key) + ":1}"
			got, _ := batch.Fields{name: json.RawMessage(`1`)}.MarshalJSON()
			if string(got) != want {
				t.Errorf("MarshalJSON() = %s, want %s", got, want)
			}
			got, _ = batch.Jobs{{Name: name, Fields: batch.Fields{}}}.MarshalJSON()
			if want := "{" + string(key) + ":{}}"; string(got) != want {
				t.Errorf("Jobs.MarshalJSON() = %s, want %s", got, want)
			}
		})
	}
}

func TestJobsMarshalJSON(t *testing.T) {
	tests := []struct {
		name string
		jobs batch.Jobs
		want string
	}{
		{"nil", nil, `{}`},
		{"job order kept, fields sorted", batch.Jobs{
			{Name: "job3", Fields: batch.Fields{"status": json.RawMessage(`"new"`), "param1": json.RawMessage(`"hello"`)}},
			{Name: "job1", Fields: batch.Fields{"big": json.RawMessage(`12345678901234567890123`)}},
			{Name: "job2", Fields: nil},
		}, `{"job3":{"param1":"hello","status":"new"},"job1":{"big":12345678901234567890123},"job2":{}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.jobs.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("MarshalJSON() = %s, want %s", got, tt.want)
			}
			// Nested in a struct, as State and Batch are.
			viaJSON, err := json.Marshal(batch.Batch{ID: 7, Jobs: tt.jobs})
			if err != nil {
				t.Fatalf("json.Marshal: %v", err)
			}
			if want := `{"batch_id":7,"jobs":` + tt.want + `}`; string(viaJSON) != want {
				t.Errorf("json.Marshal(Batch) = %s, want %s", viaJSON, want)
			}
		})
	}
}

func TestJobsGetAndBatchID(t *testing.T) {
	jobs := batch.Jobs{
		{Name: "job1", Fields: mkFields(t, `{"batch_id":1479822570}`)},
		{Name: "job2", Fields: mkFields(t, `{"batch_id":1479822600}`)},
		{Name: "job3", Fields: mkFields(t, `{"batch_id":null}`)},
		{Name: "job4", Fields: mkFields(t, `{}`)},
	}
	t.Run("Get", func(t *testing.T) {
		tests := []struct {
			name   string
			wantOK bool
		}{
			{"job2", true},
			{"job4", true},
			{"job5", false},
			{"", false},
		}
		for _, tt := range tests {
			j, ok := jobs.Get(tt.name)
			if ok != tt.wantOK || (ok && j.Name != tt.name) {
				t.Errorf("Get(%q) = %q, %v; want ok %v", tt.name, j.Name, ok, tt.wantOK)
			}
		}
	})
	t.Run("BatchID", func(t *testing.T) {
		if got, want := jobs.BatchID(), int64(1479822600); got != want {
			t.Errorf("BatchID() = %d, want %d", got, want)
		}
		if got := (batch.Jobs{}).BatchID(); got != 0 {
			t.Errorf("empty BatchID() = %d, want 0", got)
		}
	})
}

func TestFieldKinds(t *testing.T) {
	tests := []struct {
		field         string
		runtime, date bool
	}{
		{"status", true, false},
		{"batch_id", true, false},
		{"from_date", true, true},
		{"to_date", true, true},
		{"batch_start", true, true},
		{"batch_end", true, true},
		{"backfill", true, false},
		{"initial_from_date", false, true},
		{"reprocess_hours", false, false},
		{"trunc_start", false, false},
		{"infa_section", false, false},
		{"param1", false, false},
		{"batch_end_date", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			if got := batch.IsRuntimeField(tt.field); got != tt.runtime {
				t.Errorf("IsRuntimeField = %v, want %v", got, tt.runtime)
			}
			if got := batch.IsDateField(tt.field); got != tt.date {
				t.Errorf("IsDateField = %v, want %v", got, tt.date)
			}
		})
	}
}

func TestJobsUnmarshalKeepsOrder(t *testing.T) {
	in := `{"zeta":{"n":12345678901234567890123},"alpha":{"s":"x","b":true}}`
	var jobs batch.Jobs
	if err := json.Unmarshal([]byte(in), &jobs); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(jobs)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"zeta":{"n":12345678901234567890123},"alpha":{"b":true,"s":"x"}}`; string(out) != want {
		t.Errorf("round trip = %s, want %s", out, want)
	}
	for _, bad := range []string{`[]`, `{"a":1}`, `{"a":{}`} {
		if err := json.Unmarshal([]byte(bad), &jobs); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestHideURLSecrets(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"stdout://", "stdout://"},
		{"file:///var/log/batchy.jsonl", "file:///var/log/batchy.jsonl"},
		{"postgres://batchy:pgS3cret@db:5432/batchy", "postgres://batchy:xxxxx@db:5432/batchy"},
		{"postgres://u@h/x?password=pgS3cret&sslmode=require", "postgres://xxxxx@h/x?password=xxxxx&sslmode=require"},
		{"nats://h:4222?subject_prefix=team_a&api_key=K3y", "nats://h:4222?api_key=xxxxx&subject_prefix=team_a"},
		{"redis://redis:6379/0?protocol=3", "redis://redis:6379/0?protocol=3"},
		{"nats://natsTok3n@h:4222", "nats://xxxxx@h:4222"},
		{"https://ci.example.com/job?token=T0KEN", "https://ci.example.com/job?token=xxxxx"},
		{"%zz", batch.Hidden},
		// A password with an unescaped '#', '/' or '?' is misread by url.Parse: hidden whole.
		{"redis://:#Pw9s3cr3t@redis.internal:6379/0", "redis://" + batch.Hidden},
		{"redis://default:/Pw9s3cr3t@redis.internal:6379/0", "redis://" + batch.Hidden},
		{"nats://etl:#Pw9s3cr3t@h:4222", "nats://" + batch.Hidden},
		{"redis://:12?x=Pw9s3cr3t@h", "redis://" + batch.Hidden},
		{"redis://h:6379/0#Pw9s3cr3t", "redis://h:6379/0#xxxxx"},
	} {
		if got := batch.HideURLSecrets(c.in); got != c.want {
			t.Errorf("HideURLSecrets(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
