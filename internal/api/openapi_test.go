package api_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/batchy/batchy/internal/api"
	"github.com/batchy/batchy/internal/auth"
	"github.com/batchy/batchy/internal/metrics"
	"github.com/batchy/batchy/internal/rdb"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// ginParam matches gin's :param and *path segments.
var ginParam = regexp.MustCompile(`[:*]([A-Za-z0-9_]+)`)

// TestOpenAPIMatchesRoutes checks that the spec documents every registered route and nothing else.
// The server is built with tokens and a UI so that the optional routes (/login, /logout, /, /ui/*path)
// are registered too; the spec documents them as only present in that case.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var spec struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI(), &spec); err != nil {
		t.Fatalf("openapi.json does not parse: %v", err)
	}
	if !strings.HasPrefix(spec.OpenAPI, "3.0.") {
		t.Fatalf("openapi = %q, want 3.0.x", spec.OpenAPI)
	}

	client, emb := rdbtest.Backends[0].New(t)
	opts := rdb.Options{}
	if emb != nil {
		opts.Embedded = emb
	}
	tokens, err := auth.Parse("admin test 0123456789abcdef0123")
	if err != nil {
		t.Fatal(err)
	}
	srv := api.New(api.Options{Store: rdb.New(client, opts), CfgDir: t.TempDir(), StoreName: "embedded",
		Tokens: tokens, UI: http.NotFoundHandler(), Metrics: metrics.New()})

	registered := map[string]bool{}
	for _, r := range srv.Routes() {
		method, path, _ := strings.Cut(r, " ")
		registered[method+" "+ginParam.ReplaceAllString(path, "{$1}")] = true
	}
	documented := map[string]bool{}
	methods := []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}
	for path, item := range spec.Paths {
		for m := range item {
			if m == "parameters" || m == "summary" || m == "description" || m == "servers" {
				continue
			}
			if !slices.Contains(methods, m) {
				t.Errorf("paths[%q] has an unknown key %q", path, m)
				continue
			}
			documented[strings.ToUpper(m)+" "+path] = true
		}
	}
	for r := range registered {
		if !documented[r] {
			t.Errorf("route %s is registered but not in openapi.json", r)
		}
	}
	for d := range documented {
		if !registered[d] {
			t.Errorf("openapi.json documents %s, which is not a registered route", d)
		}
	}
}

// TestOpenAPIRefs checks that every $ref points at a defined component.
func TestOpenAPIRefs(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if r, ok := v["$ref"].(string); ok {
				var target any = doc
				for _, part := range strings.Split(strings.TrimPrefix(r, "#/"), "/") {
					m, _ := target.(map[string]any)
					target = m[part]
				}
				if target == nil {
					t.Errorf("$ref %s points at nothing", r)
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
}

// TestOpenAPIOperationIDs checks that every operation has an operationId, unique in the spec, so
// that generated clients get method names (Redocly's recommended rules ask for both).
func TestOpenAPIOperationIDs(t *testing.T) {
	var spec struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI(), &spec); err != nil {
		t.Fatal(err)
	}
	valid := regexp.MustCompile(`^[a-z][A-Za-z0-9]*$`)
	seen := map[string]string{}
	for path, ops := range spec.Paths {
		for method, raw := range ops {
			switch method {
			case "get", "put", "post", "delete", "options", "head", "patch", "trace":
			default:
				continue // parameters, summary, servers: not an operation
			}
			var op struct {
				OperationID string `json:"operationId"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatal(err)
			}
			where := strings.ToUpper(method) + " " + path
			switch {
			case op.OperationID == "":
				t.Errorf("%s has no operationId", where)
			case !valid.MatchString(op.OperationID):
				t.Errorf("%s: operationId %q is not lowerCamelCase", where, op.OperationID)
			case seen[op.OperationID] != "":
				t.Errorf("%s: operationId %q is %s's already", where, op.OperationID, seen[op.OperationID])
			default:
				seen[op.OperationID] = where
			}
		}
	}
	if len(seen) == 0 {
		t.Fatal("no operation found")
	}
}
