package api_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/batchy/batchy/internal/api"
	"github.com/batchy/batchy/internal/auth"
	"github.com/batchy/batchy/internal/config"
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

// TestCookieChangesNeedCSRF: with the login cookie alone, reads pass and every change is refused,
// the original GET routes included (a same-site page could load <img src="/fail_batch/wf1">).
func TestCookieChangesNeedCSRF(t *testing.T) {
	const secret = "op-secret-0123456789abc"
	tokens, err := auth.Parse("operate op " + secret)
	if err != nil {
		t.Fatal(err)
	}
	client, _ := rdbtest.Backends[0].New(t)
	store := rdb.New(client, rdb.Options{})
	e := &env{cfg: t.TempDir()}
	e.writeCfg(t, "wf1", "a: {}\n")
	wf, err := config.Parse("wf1", []byte("a: {}\n"), config.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Load(t.Context(), wf, false); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Options{Store: store, CfgDir: e.cfg, Tokens: tokens}).Handler())
	defer srv.Close()
	call := func(method, path, csrf string) int {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		req.AddCookie(&http.Cookie{Name: "batchy_token", Value: secret})
		if csrf != "" {
			req.Header.Set("X-CSRF-Token", csrf)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for _, c := range []struct {
		method, path, csrf string
		want               int
	}{
		{"GET", "/get_status/wf1", "", 200},
		{"GET", "/open_batch/wf1", "", 403},
		{"GET", "/fail_batch/wf1", "", 403},
		{"POST", "/v1/workflows/wf1/open", "", 403},
		{"POST", "/v1/workflows/wf1/open", "wrong", 403},
		{"GET", "/open_batch/wf1", auth.CSRF(secret), 200},
		{"POST", "/v1/workflows/wf1/close", auth.CSRF(secret), 200},
	} {
		if got := call(c.method, c.path, c.csrf); got != c.want {
			t.Errorf("%s %s with the cookie and CSRF %q: %d, want %d", c.method, c.path, c.csrf, got, c.want)
		}
	}
}

// TestLoopbackOnlyWithoutTokens: a batchy without tokens answers curl on this machine, and no page
// of another site nor a DNS-rebound host name.
func TestLoopbackOnlyWithoutTokens(t *testing.T) {
	client, _ := rdbtest.Backends[0].New(t)
	e := &env{cfg: t.TempDir()}
	e.writeCfg(t, "wf1", "a: {}\n")
	srv := httptest.NewServer(api.New(api.Options{Store: rdb.New(client, rdb.Options{}), CfgDir: e.cfg, LoopbackOnly: true,
		HostNames: []string{"etl-host.corp.example", "etl-host"}}).Handler())
	defer srv.Close()
	path := "/load_cfg/wf1"
	const firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	call := func(host string, header ...string) int {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if host != "" {
			req.Host = host
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for _, c := range []struct {
		name   string
		host   string
		header []string
		want   int
	}{
		{"curl to 127.0.0.1", "", nil, 200},
		{"curl to localhost", "localhost:5000", nil, 200},
		{"curl to [::1]", "[::1]:5000", nil, 200},
		// The original's documented URL and waitsy's constant, and the machine's names: local tools
		// reach a loopback-bound batchy by any name, since only a browser can bring a page's request.
		{"curl to 0.0.0.0, the original's URL", "0.0.0.0:5000", []string{"User-Agent", "curl/8.5.0"}, 200},
		{"python-requests (the original waitsy) to 0.0.0.0", "0.0.0.0:5000", []string{"User-Agent", "python-requests/2.31.0"}, 200},
		{"curl to the host name", "etl-host:5000", []string{"User-Agent", "curl/8.5.0"}, 200},
		{"curl to another name of this machine", "etl.internal:5000", []string{"User-Agent", "curl/8.5.0"}, 200},
		{"the UI's own page", "", []string{"Sec-Fetch-Site", "same-origin", "Origin", srv.URL}, 200},
		{"a browser at 0.0.0.0", "0.0.0.0:5000", []string{"Sec-Fetch-Site", "none", "User-Agent", firefox}, 200},
		{"a browser at the host name", "etl-host.corp.example:5000", []string{"Sec-Fetch-Site", "none", "User-Agent", firefox}, 200},
		{"a browser at the short host name", "ETL-HOST:5000", []string{"Sec-Fetch-Site", "same-origin", "User-Agent", firefox}, 200},
		// DNS rebinding: a page of evil.example, its name now resolving to 127.0.0.1, asks its "own"
		// origin. Modern browsers mark it same-origin; old ones send no Sec-Fetch-* and no Origin on
		// a GET, only their User-Agent.
		{"a DNS-rebound name, modern browser", "rebind.evil.example:5000", []string{"Sec-Fetch-Site", "same-origin", "Sec-Fetch-Mode", "cors", "User-Agent", firefox}, 403},
		{"a DNS-rebound name, old browser", "rebind.evil.example:5000", []string{"User-Agent", "Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 Safari/605.1.15"}, 403},
		{"a DNS-rebound name, with an Origin", "rebind.evil.example:5000", []string{"Origin", "http://rebind.evil.example:5000"}, 403},
		{"another site's page to 0.0.0.0", "0.0.0.0:5000", []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example", "User-Agent", firefox}, 403},
		{"another site's page to the host name", "etl-host:5000", []string{"Origin", "https://evil.example"}, 403},
		{"another site's page", "", []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"another origin", "", []string{"Origin", "https://evil.example"}, 403},
		{"another local port", "", []string{"Origin", "http://localhost:8888", "Sec-Fetch-Site", "same-site"}, 403},
		{"an image on another local page", "", []string{"Sec-Fetch-Site", "same-site", "Sec-Fetch-Mode", "no-cors"}, 403},
	} {
		if got := call(c.host, c.header...); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	// A link followed from another site opens a page that only reads, never one that changes.
	navigate := []string{"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "navigate"}
	if got := call("", navigate...); got != 403 {
		t.Errorf("a cross-site navigation to /load_cfg: %d, want 403", got)
	}
	path = "/get_status/wf1"
	if got := call("", navigate...); got != 200 {
		t.Errorf("a cross-site navigation to /get_status: %d, want 200", got)
	}
}

// TestLoginReturnsToThePage: a login goes back to the page that asked for it, on this server
// only: a next that leads elsewhere goes to the dashboard.
func TestLoginReturnsToThePage(t *testing.T) {
	const secret = "read-secret-0123456789abc"
	tokens, err := auth.Parse("read viewer " + secret)
	if err != nil {
		t.Fatal(err)
	}
	client, _ := rdbtest.Backends[0].New(t)
	srv := httptest.NewServer(api.New(api.Options{Store: rdb.New(client, rdb.Options{}), CfgDir: t.TempDir(), Tokens: tokens}).Handler())
	defer srv.Close()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for next, want := range map[string]string{
		"/ui/workflows/wf1?page=2": "/ui/workflows/wf1?page=2",
		"":                         "/",
		"//evil.example/x":         "/",
		"/\\evil.example":          "/",
		"https://evil.example/":    "/",
		"ui/workflows/wf1":         "/",
	} {
		res, err := noRedirect.PostForm(srv.URL+"/login", url.Values{"token": {secret}, "next": {next}})
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if got := res.Header.Get("Location"); res.StatusCode != http.StatusSeeOther || got != want {
			t.Errorf("login with next %q: %d to %q, want 303 to %q", next, res.StatusCode, got, want)
		}
	}
	// The login page carries the next page through its form.
	res, err := http.Get(srv.URL + "/login?next=" + url.QueryEscape("/ui/workflows/wf1"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), `<input type="hidden" name="next" value="/ui/workflows/wf1">`) {
		t.Errorf("login page without the next page:\n%s", body)
	}
}

// TestLoginRefusesCrossSitePosts: another site's page cannot log the browser in (login CSRF):
// a cross-site Sec-Fetch-Site or a foreign Origin is a 403 that sets no cookie.
func TestLoginRefusesCrossSitePosts(t *testing.T) {
	const secret = "read-secret-0123456789abc"
	tokens, err := auth.Parse("read viewer " + secret)
	if err != nil {
		t.Fatal(err)
	}
	client, _ := rdbtest.Backends[0].New(t)
	srv := httptest.NewServer(api.New(api.Options{Store: rdb.New(client, rdb.Options{}), CfgDir: t.TempDir(), Tokens: tokens}).Handler())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, tc := range []struct {
		name    string
		headers map[string]string
		want    int
	}{
		{"no browser headers (curl)", nil, http.StatusSeeOther},
		{"same origin", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": srv.URL}, http.StatusSeeOther},
		{"through a proxy", map[string]string{"Origin": "https://batchy.example", "X-Forwarded-Host": "batchy.example"}, http.StatusSeeOther},
		{"cross-site", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"same-site sibling", map[string]string{"Sec-Fetch-Site": "same-site"}, http.StatusForbidden},
		{"foreign origin", map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"null origin", map[string]string{"Origin": "null"}, http.StatusForbidden},
		{"other port", map[string]string{"Origin": "http://" + strings.Split(host, ":")[0] + ":1"}, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", srv.URL+"/login", strings.NewReader(url.Values{"token": {secret}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			res, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != tc.want {
				t.Errorf("status %d, want %d", res.StatusCode, tc.want)
			}
			if cookie := res.Header.Get("Set-Cookie"); (cookie != "") != (tc.want == http.StatusSeeOther) {
				t.Errorf("Set-Cookie %q with status %d", cookie, res.StatusCode)
			}
		})
	}
}
