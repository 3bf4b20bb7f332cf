package api

import (
	"html/template"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/batchy/batchy/internal/auth"
	"github.com/batchy/batchy/internal/batch"
)

// cookieName holds a browser's token after it logged in.
const cookieName = "batchy_token"

// loginFor is how long a browser login lasts.
const loginFor = 12 * time.Hour

// requiredRole is the one place that says which role each route needs. The original GET routes
// that change state need the role of what they do, like their v1 counterparts.
func requiredRole(method, route string) auth.Role {
	switch {
	case route == "":
		return auth.RoleNone // no route: a 404 either way, and browsers ask for /favicon.ico
	case route == "/healthz" || route == "/readyz" || route == "/index" || route == "/openapi.json" || route == "/login" || route == "/logout" ||
		strings.HasPrefix(route, "/ui/static"):
		return auth.RoleNone
	case route == "/load_cfg/:wf" || route == "/v1/workflows/:wf/load" || route == "/v1/workflows/:wf/jobs/:job/watermark":
		return auth.RoleAdmin
	case strings.HasPrefix(route, "/open_batch/") || strings.HasPrefix(route, "/close_batch/") || strings.HasPrefix(route, "/fail_batch/"):
		return auth.RoleOperate
	case method == http.MethodGet || method == http.MethodHead:
		return auth.RoleRead
	}
	return auth.RoleOperate
}

// isPage reports whether a route serves HTML to a browser (redirected to the login page rather
// than answered with a JSON 401).
func isPage(route string) bool { return route == "/" || strings.HasPrefix(route, "/ui/") }

// authenticate checks the request's token against the route's role. Tokens come as
// "Authorization: Bearer <token>", as ?token= for legacy scripts, or as the login cookie; a
// change made with the cookie must carry the X-CSRF-Token header, which another site's page
// cannot send.
func (s *Server) authenticate(c *gin.Context) {
	if s.opts.Tokens.Empty() {
		if s.opts.LoopbackOnly {
			readOnly := requiredRole(c.Request.Method, c.FullPath()) <= auth.RoleRead
			if err := s.fromThisMachine(c.Request, readOnly); err != nil {
				s.fail(c, err)
				return
			}
		}
		c.Next()
		return
	}
	route := c.FullPath()
	if route == "" && c.Request.URL.Path == "/ui/static" {
		route = "/ui/static"
	}
	if strings.HasPrefix(c.Request.URL.Path, "/ui/static/") {
		route = "/ui/static"
	}
	need := requiredRole(c.Request.Method, route)
	secret, fromCookie := "", false
	if h := c.GetHeader("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		secret = strings.TrimSpace(h[7:]) // the scheme is case-insensitive (RFC 9110)
	} else if q := c.Query("token"); q != "" {
		secret = q
	} else if ck, err := c.Cookie(cookieName); err == nil {
		secret, fromCookie = ck, true
	}
	tok, ok := s.opts.Tokens.Authenticate(secret)
	if ok {
		c.Request = c.Request.WithContext(auth.WithToken(c.Request.Context(), tok))
	}
	if need == auth.RoleNone {
		c.Next()
		return
	}
	if !ok {
		if isPage(route) && c.Request.Method == http.MethodGet {
			// Back to the page asked for once logged in.
			c.Redirect(http.StatusSeeOther, "/login?next="+url.QueryEscape(c.Request.URL.RequestURI()))
			c.Abort()
			return
		}
		msg := "a valid token is required: send Authorization: Bearer <token>"
		if secret != "" {
			msg = "the token is not valid"
		}
		s.fail(c, batch.Errorf(batch.EUNAUTHORIZED, "%s", msg))
		return
	}
	if tok.Role < need {
		s.fail(c, batch.Errorf(batch.EFORBIDDEN, "token %s has role %s; this needs %s", tok.Name, tok.Role, need))
		return
	}
	// Every change made with the cookie needs the header, the original GET routes' included: a
	// page on a sibling host is "same site" for SameSite=Strict and could load
	// <img src="/fail_batch/wf1">.
	if fromCookie && need > auth.RoleRead && c.GetHeader("X-CSRF-Token") != auth.CSRF(secret) {
		s.fail(c, batch.Errorf(batch.EFORBIDDEN, "missing or wrong X-CSRF-Token header for a change made with the login cookie"))
		return
	}
	c.Next()
}

// fromThisMachine refuses what reaches a loopback-only batchy without auth from elsewhere through
// a browser: a page of any other origin, another local port included (its requests carry an
// Origin or a Sec-Fetch-Site other than same-origin), or a DNS-rebinding attack (a browser asking
// for a host name that is not one of this machine's). The listener is on loopback, so every
// request came from this machine; what can still reach it from elsewhere is a browser on this
// machine, run by a page. So the decision rests on what marks a browser's request, not on the Host
// alone: curl, waitsy and ETL tools may name the server as they like (http://0.0.0.0:5000, the
// original's URL, or the machine's host name). Following a link to a page that only reads
// (readOnly) is fine from anywhere.
func (s *Server) fromThisMachine(r *http.Request, readOnly bool) error {
	if !fromBrowser(r) {
		return nil
	}
	if !s.localHost(r.Host) {
		return batch.Errorf(batch.EFORBIDDEN, "without tokens batchy answers browsers only at a name of this machine (localhost, 127.0.0.1, [::1], 0.0.0.0, %s), not %q", s.hostNames[0], clip(r.Host))
	}
	navigation := r.Header.Get("Sec-Fetch-Mode") == "navigate" && (r.Method == http.MethodGet || r.Method == http.MethodHead)
	if readOnly && navigation {
		return nil
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "none", "same-origin":
	default:
		return batch.Errorf(batch.EFORBIDDEN, "without tokens batchy answers no request another page than its own makes")
	}
	if o := r.Header.Get("Origin"); o != "" {
		if u, err := url.Parse(o); err != nil || !strings.EqualFold(u.Host, r.Host) {
			return batch.Errorf(batch.EFORBIDDEN, "without tokens batchy answers no request from the page of %q", clip(o))
		}
	}
	return nil
}

// sameOriginForm refuses a form posted by another site's page: browsers say where a request
// comes from in Sec-Fetch-Site (all current ones) and Origin (on every POST). A proxy in front may
// pass the browser's host in X-Forwarded-Host rather than Host. Clients that send neither header
// (curl, scripts) are not browsers and pass.
func sameOriginForm(r *http.Request) error {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "none", "same-origin":
	default:
		return batch.Errorf(batch.EFORBIDDEN, "a login from another site's page is refused: open the login page of batchy itself")
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) && !strings.EqualFold(u.Host, r.Header.Get("X-Forwarded-Host")) {
			return batch.Errorf(batch.EFORBIDDEN, "a login from the page of %q is refused: open the login page of batchy itself", clip(o))
		}
	}
	return nil
}

// fromBrowser reports whether a request bears a browser's marks. Browsers send Sec-Fetch-Site on
// every request (Chrome 76+, Firefox 90+, Safari 16.4+) and a page cannot remove it; Origin on
// every cross-origin request; and older ones, which send neither on a same-origin GET (the one a
// DNS-rebinding page makes), a User-Agent that starts with Mozilla/. Tools send none of these.
func fromBrowser(r *http.Request) bool {
	return r.Header.Get("Sec-Fetch-Site") != "" || r.Header.Get("Sec-Fetch-Mode") != "" || r.Header.Get("Origin") != "" ||
		strings.HasPrefix(r.UserAgent(), "Mozilla/")
}

// localHost reports whether a Host header (host or host:port) names this machine: localhost, a
// loopback address, 0.0.0.0 or :: (which reach this machine), or its host name. A DNS-rebinding
// page can make a browser send only its own domain.
func (s *Server) localHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	for _, n := range s.hostNames {
		if strings.EqualFold(host, n) {
			return true
		}
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.IsLoopback() || ip.IsUnspecified())
}

// CanAct reports whether the request may change state (the UI shows actions only then).
func CanAct(tokens *auth.Tokens) func(*http.Request) bool { return hasRole(tokens, auth.RoleOperate) }

// CanAdmin reports whether the request may take admin actions (the UI shows them only then).
func CanAdmin(tokens *auth.Tokens) func(*http.Request) bool { return hasRole(tokens, auth.RoleAdmin) }

// hasRole reports whether the request's token has at least role; without tokens everyone has.
func hasRole(tokens *auth.Tokens, role auth.Role) func(*http.Request) bool {
	return func(r *http.Request) bool {
		if tokens.Empty() {
			return true
		}
		t, ok := auth.FromContext(r.Context())
		return ok && t.Role >= role
	}
}

// CSRFToken returns the anti-CSRF token of a logged-in browser, "" otherwise.
func CSRFToken(r *http.Request) string {
	if ck, err := r.Cookie(cookieName); err == nil {
		return auth.CSRF(ck.Value)
	}
	return ""
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>batchy: log in</title><link rel="icon" href="data:,"></head>
<body style="font-family:system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem">
<h1>batchy</h1>
{{with .Error}}<p role="alert" style="color:#b00020">{{.}}</p>{{end}}
<form method="post" action="/login">
{{with .Next}}<input type="hidden" name="next" value="{{.}}">{{end}}
<label for="token">API token</label><br>
<input id="token" name="token" type="password" autocomplete="current-password" required style="width:100%;padding:.4rem">
<p><button type="submit">Log in</button></p>
</form></body></html>`))

// loginData fills the login page: an error to show, and the page to go back to.
type loginData struct{ Error, Next string }

// localPath returns p when it is a path on this server ("/ui/workflows/wf1?page=2"), "" for
// anything else: a login must not send the browser to another site ("//evil.example", "/\\evil").
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\r\n") {
		return ""
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return ""
	}
	return p
}

func (s *Server) routesLogin() {
	s.engine.GET("/login", func(c *gin.Context) {
		c.Status(http.StatusOK)
		c.Header("Content-Type", "text/html; charset=utf-8")
		loginPage.Execute(c.Writer, loginData{Next: localPath(c.Query("next"))})
	})
	s.engine.POST("/login", func(c *gin.Context) {
		if err := sameOriginForm(c.Request); err != nil {
			// Login CSRF: another site's page could post its own token and have the victim work
			// (and enter data) under the attacker's identity.
			c.Status(http.StatusForbidden)
			c.Header("Content-Type", "text/html; charset=utf-8")
			loginPage.Execute(c.Writer, loginData{Error: batch.ErrorMessage(err)})
			return
		}
		secret := c.PostForm("token")
		if _, ok := s.opts.Tokens.Authenticate(secret); !ok {
			c.Status(http.StatusUnauthorized)
			c.Header("Content-Type", "text/html; charset=utf-8")
			loginPage.Execute(c.Writer, loginData{Error: "That token is not valid.", Next: localPath(c.PostForm("next"))})
			return
		}
		// The cookie lasts a working day; Secure when the browser came over HTTPS, to batchy or to
		// a TLS-terminating proxy in front (the flag only restricts the cookie, so trusting the
		// header costs nothing).
		http.SetCookie(c.Writer, &http.Cookie{Name: cookieName, Value: secret, Path: "/", HttpOnly: true, MaxAge: int(loginFor.Seconds()),
			SameSite: http.SameSiteStrictMode, Secure: c.Request.TLS != nil || c.GetHeader("X-Forwarded-Proto") == "https"})
		next := localPath(c.PostForm("next"))
		if next == "" {
			next = "/"
		}
		c.Redirect(http.StatusSeeOther, next)
	})
	s.engine.GET("/logout", func(c *gin.Context) {
		http.SetCookie(c.Writer, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		c.Redirect(http.StatusSeeOther, "/login")
	})
}
