package config_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/config"
)

// TestUnloaded: the never-loaded workflows are listed again only when the directory or the number
// of loaded workflows changed.
func TestUnloaded(t *testing.T) {
	dir := t.TempDir()
	write := func(name string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte("a: {}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a")
	write("b")
	loaded := map[string]bool{"a": true}
	asked := 0
	isLoaded := func(_ context.Context, names []string) ([]bool, error) {
		asked++
		out := make([]bool, len(names))
		for i, n := range names {
			out[i] = loaded[n]
		}
		return out, nil
	}
	var u config.Unloaded
	get := func(total int, want []string, wantAsked int) {
		t.Helper()
		got, err := u.Get(context.Background(), dir, total, isLoaded)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) || asked != wantAsked {
			t.Errorf("Get(%d) = %v after %d asks, want %v after %d", total, got, asked, want, wantAsked)
		}
	}
	get(1, []string{"b"}, 1)
	get(1, []string{"b"}, 1) // nothing changed: kept
	loaded["b"] = true
	get(2, nil, 2) // a first load
	time.Sleep(10 * time.Millisecond)
	write("c")
	get(2, []string{"c"}, 3) // a new file
}

// TestConfigured: the test of which names have a file follows the directory's files.
func TestConfigured(t *testing.T) {
	dir := t.TempDir()
	var u config.Unloaded
	check := func(want map[string]bool) {
		t.Helper()
		configured, err := u.Configured(dir)
		if err != nil {
			t.Fatal(err)
		}
		for name, w := range want {
			if got := configured(name); got != w {
				t.Errorf("configured(%q) = %v, want %v", name, got, w)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("a: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	check(map[string]bool{"a": true, "b": false})
	time.Sleep(10 * time.Millisecond)
	if err := os.WriteFile(filepath.Join(dir, "b.yml"), []byte("a: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	check(map[string]bool{"a": true, "b": true})
	time.Sleep(10 * time.Millisecond)
	if err := os.Remove(filepath.Join(dir, "a.yaml")); err != nil {
		t.Fatal(err)
	}
	check(map[string]bool{"a": false, "b": true})
	if configured, err := u.Configured(filepath.Join(dir, "missing")); err != nil || configured("b") {
		t.Errorf("a directory that does not exist: %v, %v; want nothing configured", configured("b"), err)
	}
}
