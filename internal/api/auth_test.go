package api_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/batchy/batchy/internal/api"
	"github.com/batchy/batchy/internal/auth"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// TestAuthRoles: no token is a 401, a weaker role a 403, the right role passes; the original GET
// routes that change state are guarded like their v1 counterparts.
func TestAuthRoles(t *testing.T) {
	tokens, err := auth.Parse("read reader reader-secret-0123456789\noperate op op-secret-0123456789abc\nadmin boss " + auth.Hash("boss-secret-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	client, _ := rdbtest.Backends[0].New(t)
	store := rdb.New(client, rdb.Options{})
	e := &env{cfg: t.TempDir()}
	e.writeCfg(t, "wf1", "a: {}\n")
	srv := httptest.NewServer(api.New(api.Options{Store: store, CfgDir: e.cfg, Tokens: tokens}).Handler())
	defer srv.Close()
	call := func(method, path, token string) int {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(""))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	cases := []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/healthz", "", 200},
		{"GET", "/load_cfg/wf1", "", 401},
		{"GET", "/load_cfg/wf1", "wrong-token-000000000", 401},
		{"GET", "/load_cfg/wf1", "op-secret-0123456789abc", 403},
		{"GET", "/load_cfg/wf1", "boss-secret-0123456789", 200},
		{"GET", "/get_status/wf1", "reader-secret-0123456789", 200},
		{"GET", "/open_batch/wf1", "reader-secret-0123456789", 403},
		{"GET", "/open_batch/wf1?token=op-secret-0123456789abc", "", 200},
		{"POST", "/v1/workflows/wf1/close", "op-secret-0123456789abc", 200},
		{"POST", "/v1/workflows/wf1/load", "op-secret-0123456789abc", 403},
	}
	for _, c := range cases {
		if got := call(c.method, c.path, c.token); got != c.want {
			t.Errorf("%s %s with %q: %d, want %d", c.method, c.path, c.token, got, c.want)
		}
	}
	if _, err := auth.Parse("read short tooshort"); err == nil {
		t.Errorf("a short secret was accepted")
	}
}
