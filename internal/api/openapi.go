package api

import (
	_ "embed"
)

// openapiSpec is the OpenAPI 3.0 description of every route; openapi_test.go checks it against
// the registered routes.
//
//go:embed openapi.json
var openapiSpec []byte

// OpenAPI returns the OpenAPI 3.0 description of the HTTP API, as JSON. The caller must not
// modify the slice.
func OpenAPI() []byte { return openapiSpec }
