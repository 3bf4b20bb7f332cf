// Package auth holds batchy's API tokens and their roles. Tokens are kept only as SHA-256 hashes
// and compared in constant time.
package auth

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

// Role is what a token may do; each role includes the ones below it.
type Role int

// Roles.
const (
	RoleNone    Role = iota
	RoleRead         // read state, history, runs, events
	RoleOperate      // open, close, fail, run, cancel, post logs
	RoleAdmin        // load configuration, rewind watermarks
)

func (r Role) String() string {
	switch r {
	case RoleRead:
		return "read"
	case RoleOperate:
		return "operate"
	case RoleAdmin:
		return "admin"
	}
	return "none"
}

// ParseRole reads a role name.
func ParseRole(s string) (Role, error) {
	switch s {
	case "read":
		return RoleRead, nil
	case "operate":
		return RoleOperate, nil
	case "admin":
		return RoleAdmin, nil
	}
	return RoleNone, fmt.Errorf("role %q must be read, operate or admin", s)
}

// Token is a named credential with a role.
type Token struct {
	Name string
	Role Role
	hash [sha256.Size]byte
}

// Tokens is the set of valid tokens.
type Tokens struct {
	list []Token
}

// Empty reports whether no token is configured (auth is off).
func (t *Tokens) Empty() bool { return t == nil || len(t.list) == 0 }

// Len returns how many tokens there are.
func (t *Tokens) Len() int {
	if t == nil {
		return 0
	}
	return len(t.list)
}

// Authenticate returns the token whose secret is given. Every token is compared, in constant
// time, so the answer's timing says nothing about which one (nearly) matched.
func (t *Tokens) Authenticate(secret string) (Token, bool) {
	if t == nil || secret == "" {
		return Token{}, false
	}
	h := sha256.Sum256([]byte(secret))
	var found Token
	ok := 0
	for _, tok := range t.list {
		if subtle.ConstantTimeCompare(h[:], tok.hash[:]) == 1 {
			found, ok = tok, 1
		}
	}
	return found, ok == 1
}

// Parse reads token lines: "<role> <name> <secret>" or "<role> <name> sha256:<hex of the
// secret's SHA-256>", one per line; blank lines and lines starting with # are skipped. Errors name
// the line, never the secret.
func Parse(text string) (*Tokens, error) {
	t := &Tokens{}
	names := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("line %d: want \"<role> <name> <secret or sha256:hex>\", got %d words", n, len(f))
		}
		role, err := ParseRole(f[0])
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", n, err)
		}
		if names[f[1]] {
			return nil, fmt.Errorf("line %d: the name %q is used twice", n, f[1])
		}
		names[f[1]] = true
		tok := Token{Name: f[1], Role: role}
		if hx, ok := strings.CutPrefix(f[2], "sha256:"); ok {
			b, err := hex.DecodeString(hx)
			if err != nil || len(b) != sha256.Size {
				return nil, fmt.Errorf("line %d (%s): sha256: must be followed by 64 hex digits", n, f[1])
			}
			copy(tok.hash[:], b)
		} else {
			if len(f[2]) < 16 {
				return nil, fmt.Errorf("line %d (%s): a secret must be at least 16 characters", n, f[1])
			}
			tok.hash = sha256.Sum256([]byte(f[2]))
		}
		t.list = append(t.list, tok)
	}
	return t, sc.Err()
}

// ParseList reads comma-separated token entries, as an environment variable holds them:
// "operate etl <secret>,read grafana sha256:<hex>". A secret cannot contain a comma here; use a
// tokens file for such secrets.
func ParseList(list string) (*Tokens, error) {
	t, err := Parse(strings.ReplaceAll(list, ",", "\n"))
	if err != nil {
		return nil, fmt.Errorf("entry%s", strings.TrimPrefix(err.Error(), "line"))
	}
	return t, nil
}

// Merge returns the tokens of a and b together; a name used in both is an error.
func Merge(a, b *Tokens) (*Tokens, error) {
	out := &Tokens{}
	names := map[string]bool{}
	for _, set := range []*Tokens{a, b} {
		if set == nil {
			continue
		}
		for _, tok := range set.list {
			if names[tok.Name] {
				return nil, fmt.Errorf("the token name %q is used twice", tok.Name)
			}
			names[tok.Name] = true
			out.list = append(out.list, tok)
		}
	}
	return out, nil
}

// Load reads a tokens file (see Parse).
func Load(path string) (*Tokens, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokens file: %v", err)
	}
	t, err := Parse(string(data))
	if err != nil {
		return nil, fmt.Errorf("tokens file %s: %v", path, err)
	}
	return t, nil
}

// Hash returns the "sha256:<hex>" form of a secret, for a tokens file without clear secrets.
func Hash(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(h[:])
}

// CSRF returns the anti-CSRF token that goes with a login cookie's secret: pages send it back in
// the X-CSRF-Token header, which another site's form cannot set.
func CSRF(secret string) string {
	h := sha256.Sum256([]byte("batchy-csrf:" + secret))
	return hex.EncodeToString(h[:16])
}

type ctxKey struct{}

// WithToken returns ctx carrying the request's authenticated token.
func WithToken(ctx context.Context, t Token) context.Context {
	return context.WithValue(ctx, ctxKey{}, t)
}

// FromContext returns the request's authenticated token, if any.
func FromContext(ctx context.Context) (Token, bool) {
	t, ok := ctx.Value(ctxKey{}).(Token)
	return t, ok
}
