package config_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/batchy/batchy/internal/batch"
)

// anchorChain returns a job whose field x lists n anchors, each nesting the one before it inside
// depth lists: each alias is within MaxDepth where it is written, the expanded value is not.
func anchorChain(n, depth int) string {
	var b strings.Builder
	b.WriteString("a:\n  x:\n")
	prev := "1"
	for i := range n {
		fmt.Fprintf(&b, "    - &l%d %s%s%s\n", i, strings.Repeat("[", depth), prev, strings.Repeat("]", depth))
		prev = fmt.Sprintf("*l%d", i)
	}
	return b.String()
}

// TestParseAliasDepth: a chain of anchors must not nest deeper than MaxDepth one alias at a time
// (this one expanded to a depth of over 2,000 before checkSize measured an alias's height).
func TestParseAliasDepth(t *testing.T) {
	_, err := parse(t, anchorChain(80, 28))
	wantError(t, err, batch.ETOOLARGE, "deeper than 32", "aliases")
	// Aliases used within the limit stay fine.
	mustParse(t, anchorChain(2, 10))
	mustParse(t, "a:\n  x: &x [[1]]\n  y: [*x, *x]\n  z: {k: *x}\n")
}
