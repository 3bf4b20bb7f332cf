package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
)

// pprofHook is added to cmd/batchy's package main with a build overlay when --profile is given:
// batchy has no profiling endpoint of its own, and the bench must not change its source. With
// BATCHY_BENCH_PPROF=<addr> it serves net/http/pprof there, plus CPU profiles the bench starts and
// stops around exactly what it measures (a wake-up lasts tens of milliseconds: profile many) and the
// runtime's memory statistics.
const pprofHook = `package main

import (
	"encoding/json"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
)

func init() {
	addr := os.Getenv("BATCHY_BENCH_PPROF")
	if addr == "" {
		return
	}
	var (
		mu sync.Mutex
		f  *os.File
	)
	http.HandleFunc("/bench/cpu/start", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		var err error
		if f, err = os.Create(r.URL.Query().Get("file")); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	http.HandleFunc("/bench/cpu/stop", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		pprof.StopCPUProfile()
		if f != nil {
			f.Close()
			f = nil
		}
	})
	http.HandleFunc("/bench/memstats", func(w http.ResponseWriter, r *http.Request) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		json.NewEncoder(w).Encode(map[string]any{"HeapInuse": ms.HeapInuse, "HeapIdle": ms.HeapIdle,
			"HeapReleased": ms.HeapReleased, "StackInuse": ms.StackInuse, "Sys": ms.Sys,
			"Goroutines": runtime.NumGoroutine(), "NumGC": ms.NumGC})
	})
	go http.ListenAndServe(addr, nil)
}
`

// buildProfiledBatchy builds ./cmd/batchy with pprofHook added through an overlay.
func buildProfiledBatchy(dir string) (string, error) {
	hook := filepath.Join(dir, "zz_bench_pprof.go")
	if err := os.WriteFile(hook, []byte(pprofHook), 0o644); err != nil {
		return "", err
	}
	target, err := filepath.Abs(filepath.Join("cmd", "batchy", "zz_bench_pprof.go"))
	if err != nil {
		return "", err
	}
	overlay, _ := json.Marshal(map[string]any{"Replace": map[string]string{target: hook}})
	ovPath := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(ovPath, overlay, 0o644); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "batchy")
	cmd := exec.Command("go", "build", "-overlay", ovPath, "-o", bin, "./cmd/batchy")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build -overlay ./cmd/batchy: %w", err)
	}
	return bin, nil
}

// profiler drives the hook of a profiled batchy; a nil profiler does nothing.
type profiler struct {
	dir  string // where profiles are written
	base string // the hook's address, http://...
}

func (p *profiler) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+path, nil)
	if err != nil {
		return nil, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err == nil && res.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: HTTP %d: %s", path, res.StatusCode, body)
	}
	return body, err
}

// startCPU starts a CPU profile into <dir>/<name>.pprof.
func (p *profiler) startCPU(ctx context.Context, name string) {
	if p == nil {
		return
	}
	if _, err := p.get(ctx, "/bench/cpu/start?file="+url.QueryEscape(filepath.Join(p.dir, name+".pprof"))); err != nil {
		fmt.Fprintf(os.Stderr, "bench: profile: %v\n", err)
	}
}

func (p *profiler) stopCPU(ctx context.Context) {
	if p == nil {
		return
	}
	if _, err := p.get(ctx, "/bench/cpu/stop"); err != nil {
		fmt.Fprintf(os.Stderr, "bench: profile: %v\n", err)
	}
}

// snapshot saves the heap and goroutine profiles and the memory statistics as <name>.*.
func (p *profiler) snapshot(ctx context.Context, name string) {
	if p == nil {
		return
	}
	for _, s := range []struct{ path, file string }{
		{"/debug/pprof/heap", name + ".heap.pprof"},
		{"/debug/pprof/goroutine", name + ".goroutine.pprof"},
		{"/bench/memstats", name + ".memstats.json"},
	} {
		data, err := p.get(ctx, s.path)
		if err == nil {
			err = os.WriteFile(filepath.Join(p.dir, s.file), data, 0o644)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: profile: %v\n", err)
		}
	}
}
