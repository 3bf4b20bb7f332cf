package event

import (
	"context"
	"encoding/json"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// subscribeTest subscribes to subject on the test server and returns the message channel.
func subscribeTest(t *testing.T, u, subject string) <-chan *nats.Msg {
	t.Helper()
	nc, err := nats.Connect(u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ch := make(chan *nats.Msg, 1000)
	if _, err := nc.ChanSubscribe(subject, ch); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil { // the subscription is in place before anything publishes
		t.Fatal(err)
	}
	return ch
}

// receive returns the next n messages whose subject has the given prefix, ignoring others.
func receive(t *testing.T, ch <-chan *nats.Msg, prefix string, n int) []*nats.Msg {
	t.Helper()
	var got []*nats.Msg
	timeout := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case m := <-ch:
			if strings.HasPrefix(m.Subject, prefix) {
				got = append(got, m)
			}
		case <-timeout:
			t.Fatalf("received %d of %d messages", len(got), n)
		}
	}
	return got
}

func TestNATSSinkPublishes(t *testing.T) {
	base := testNATSURL(t)
	ch := subscribeTest(t, base, "batchy.event.>")
	s, err := DefaultRegistry(RegistryOptions{}).Open(base)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	wf := "orders.daily-" + uniqueName("t") // the dot must not split the subject
	tok := strings.ReplaceAll(wf, ".", "_")
	t0 := time.Date(2025, 3, 1, 6, 0, 0, 0, time.UTC)
	events := []Event{
		{ID: "1-0", Time: t0, Workflow: wf, Job: "load users", BatchID: 7, Type: TypeOpen, Level: "info", Message: "opened"},
		{ID: "1-1", Time: t0, Workflow: wf, Type: TypeLog, Level: "info", Message: "no job", Fields: map[string]any{"rows": 3.0}},
		{Time: t0, Workflow: wf, Job: "a>b*c", Type: TypeClose, Level: "info", Message: "closed"},
	}
	if err := s.Write(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	msgs := receive(t, ch, "batchy.event."+tok+".", len(events))
	wantSubjects := []string{
		"batchy.event." + tok + ".load_users",
		"batchy.event." + tok + "._",
		"batchy.event." + tok + ".a_b_c",
	}
	wantIDs := []string{wf + "/1-0", wf + "/1-1", ""}
	for i, m := range msgs {
		if m.Subject != wantSubjects[i] {
			t.Errorf("message %d subject = %q, want %q", i, m.Subject, wantSubjects[i])
		}
		if got := m.Header.Get(nats.MsgIdHdr); got != wantIDs[i] {
			t.Errorf("message %d %s = %q, want %q", i, nats.MsgIdHdr, got, wantIDs[i])
		}
		var e Event
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Fatalf("message %d is not an event: %v: %s", i, err, m.Data)
		}
		if !reflect.DeepEqual(e, events[i]) {
			t.Errorf("message %d:\n got %+v\nwant %+v", i, e, events[i])
		}
	}
}

func TestNATSSinkTruncatesOversizedEvents(t *testing.T) {
	base := testNATSURL(t)
	wf := uniqueName("big")
	ch := subscribeTest(t, base, "batchy.event."+wf+".>")
	s, err := DefaultRegistry(RegistryOptions{}).Open(base)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	huge := strings.Repeat("z", 4<<20) // beyond any default max_payload
	events := []Event{
		{Time: time.Now(), Workflow: wf, Type: TypeLog, Level: "info", Message: huge},
		{Time: time.Now(), Workflow: wf, Type: TypeLog, Level: "info", Message: "next"},
	}
	if err := s.Write(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	msgs := receive(t, ch, "batchy.event."+wf, 2)
	var e Event
	if err := json.Unmarshal(msgs[0].Data, &e); err != nil {
		t.Fatal(err)
	}
	if len(e.Message) != 4096 || e.Fields["batchy_truncated_from_bytes"] == nil {
		t.Errorf("oversized event arrived with a %d-byte message and fields %v", len(e.Message), e.Fields)
	}
	if err := json.Unmarshal(msgs[1].Data, &e); err != nil || e.Message != "next" {
		t.Errorf("second event = %+v, %v", e, err)
	}
}

func TestNATSSinkSubjectPrefix(t *testing.T) {
	base := testNATSURL(t)
	prefix := "acme." + uniqueName("etl")
	ch := subscribeTest(t, base, prefix+".>")
	s, err := DefaultRegistry(RegistryOptions{}).Open(base + "?subject_prefix=" + prefix)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Write(context.Background(), []Event{{Time: time.Now(), Workflow: "wf", Job: "j", Type: TypeLog, Level: "info"}}); err != nil {
		t.Fatal(err)
	}
	m := receive(t, ch, prefix, 1)[0]
	if want := prefix + ".wf.j"; m.Subject != want {
		t.Errorf("subject = %q, want %q", m.Subject, want)
	}
}

func TestNATSSinkRejectsBadURLs(t *testing.T) {
	reg := DefaultRegistry(RegistryOptions{})
	for _, raw := range []string{
		"nats://127.0.0.1:4222?subject_prefix=a..b",
		"nats://127.0.0.1:4222?subject_prefix=a.*",
		"nats://127.0.0.1:4222?subject_prefix=",
		"nats://127.0.0.1:4222?subjects=x",
		"nats:///nohost",
	} {
		t.Run(raw, func(t *testing.T) {
			s, err := reg.Open(raw)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded", raw)
			}
		})
	}
}

// TestSinkURLSecretsNeverShown: an unknown parameter's value (a token given as ?token=) and a
// password the URL parser misreads (an unescaped '#' or '/') appear in no error.
func TestSinkURLSecretsNeverShown(t *testing.T) {
	const secret = "S3CRET-NATS-TOKEN"
	for _, raw := range []string{
		"nats://127.0.0.1:4222?token=" + secret,
		"nats://etl:#" + secret + "@127.0.0.1:4222",
		"nats://etl:/" + secret + "@127.0.0.1:4222",
		"postgres://u:?" + secret + "@127.0.0.1:5432/test",
	} {
		s, err := DefaultRegistry(RegistryOptions{}).Open(raw)
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", raw)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("Open: the error shows the secret: %v", err)
		}
	}
}

func TestNATSSinkUnreachableHidesPassword(t *testing.T) {
	const secret = "n4ts-s3cret"
	raw := "nats://batchy:" + secret + "@127.0.0.1:1"
	s, err := DefaultRegistry(RegistryOptions{}).Open(raw)
	if err != nil {
		// Opening does not need the server; an error here must still hide the password.
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("error shows the password: %v", err)
		}
		t.Fatal(err)
	}
	defer s.Close()
	if strings.Contains(s.String(), secret) {
		t.Errorf("String() = %q shows the password", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err = s.Write(ctx, []Event{{Time: time.Now(), Workflow: "wf", Type: TypeLog, Level: "info"}})
	if err == nil {
		t.Fatal("Write to an unreachable server succeeded")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error shows the password: %v", err)
	}
	if d := time.Since(start); d > 6*time.Second {
		t.Errorf("Write took %v, want at most the 5 s flush timeout", d)
	}
	t.Logf("error after %v: %v", time.Since(start), err)
}

func TestSubjectToken(t *testing.T) {
	for in, want := range map[string]string{
		"":             "_",
		"orders":       "orders",
		"orders.daily": "orders_daily",
		"a b*c>d":      "a_b_c_d",
		"Ab-9_z":       "Ab-9_z",
		"café":         "caf_",
	} {
		if got := SubjectToken(in); got != want {
			t.Errorf("SubjectToken(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRedactURLText(t *testing.T) {
	u, _ := url.Parse("postgres://u:" + url.PathEscape("p@ss w/rd") + "@h/db")
	text := "failed: p@ss w/rd; conn string postgres://u:" + url.PathEscape("p@ss w/rd") + "@h/db; query " + url.QueryEscape("p@ss w/rd")
	got := redactURLText(text, u)
	for _, leak := range []string{"p@ss w/rd", url.PathEscape("p@ss w/rd"), url.QueryEscape("p@ss w/rd")} {
		if strings.Contains(got, leak) {
			t.Errorf("redactURLText left %q in %q", leak, got)
		}
	}
}
