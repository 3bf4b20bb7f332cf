package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batchy/batchy/internal/auth"
	"github.com/batchy/batchy/internal/rdb/rdbtest"
)

// Secrets used by the security tests: none of them may appear in a log line or a response.
const (
	readSecret    = "read-secret-0123456789"
	operateSecret = "operate-secret-0123456789"
	adminSecret   = "admin-secret-0123456789"
)

// request sends method url with an optional bearer token and body, returning status and body.
func request(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(res.Body)
	return res.StatusCode, b.String()
}

// TestServeWithTokens: tokens from a file (hashed) and the environment; a request without a
// token, with a wrong one or with too small a role is refused with a JSON error and changes
// nothing; a body over the limit is refused; no secret reaches the logs or /metrics.
func TestServeWithTokens(t *testing.T) {
	cfg, _ := filepath.Abs("../../cfg")
	dir := t.TempDir()
	tokensFile := filepath.Join(dir, "tokens")
	os.WriteFile(tokensFile, []byte("# batchy tokens\nread dashboards "+auth.Hash(readSecret)+"\nadmin ops "+auth.Hash(adminSecret)+"\n"), 0o600)
	p := startServe(t, []string{"BATCHY_TOKENS=operate etl " + operateSecret},
		"--cfg-dir", cfg, "--data-file", filepath.Join(dir, "batchy.json"), "--tokens-file", tokensFile, "--max-body-bytes", "4096")
	if !strings.Contains(p.logs.String(), "auth=\"3 tokens\"") {
		t.Errorf("the start log does not say auth is on with 3 tokens:\n%s", p.logs)
	}

	// The original routes: ?token= for legacy scripts; admin loads, operate opens.
	if code, body := curl(t, p.url+"/load_cfg/wf1"); code != http.StatusUnauthorized || !strings.Contains(body, `"code":"unauthorized"`) {
		t.Fatalf("load without a token: %d %s", code, body)
	}
	if code, body := curl(t, p.url+"/load_cfg/wf1?token=wrong-token-0123456789"); code != http.StatusUnauthorized || !strings.Contains(body, "not valid") {
		t.Fatalf("load with a wrong token: %d %s", code, body)
	}
	if code, body := curl(t, p.url+"/load_cfg/wf1?token="+operateSecret); code != http.StatusForbidden || !strings.Contains(body, "needs admin") {
		t.Fatalf("load with an operate token: %d %s", code, body)
	}
	if code, body := curl(t, p.url+"/load_cfg/wf1?token="+adminSecret); code != http.StatusOK {
		t.Fatalf("load with the admin token: %d %s", code, body)
	}
	_, before := curl(t, p.url+"/get_status/wf1?token="+readSecret)
	if code, body := curl(t, p.url+"/open_batch/wf1?token="+readSecret); code != http.StatusForbidden {
		t.Fatalf("open with a read token: %d %s", code, body)
	}
	if code, body := request(t, "POST", p.url+"/v1/workflows/wf1/open", readSecret, "{}"); code != http.StatusForbidden || !strings.Contains(body, "needs operate") {
		t.Fatalf("v1 open with a read token: %d %s", code, body)
	}
	big := `{"metadata":{"x":"` + strings.Repeat("a", 8000) + `"}}`
	if code, body := request(t, "POST", p.url+"/v1/workflows/wf1/open", operateSecret, big); code != http.StatusRequestEntityTooLarge || !strings.Contains(body, `"code":"too_large"`) {
		t.Fatalf("open with a body over --max-body-bytes: %d %s", code, body)
	}
	if _, after := curl(t, p.url+"/get_status/wf1?token="+readSecret); after != before {
		t.Fatalf("refused requests changed the state:\nbefore %s\nafter  %s", before, after)
	}
	if code, body := request(t, "POST", p.url+"/v1/workflows/wf1/open", operateSecret, "{}"); code != http.StatusOK {
		t.Fatalf("v1 open with the operate token: %d %s", code, body)
	}

	// Health needs no token and says nothing secret; metrics need the read role.
	if code, body := curl(t, p.url+"/healthz"); code != http.StatusOK || !strings.Contains(body, `"status":"ok"`) {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	if code, body := curl(t, p.url+"/readyz"); code != http.StatusOK || !strings.Contains(body, `"store_latency_ms"`) || !strings.Contains(body, `"leader"`) {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	if code, _ := curl(t, p.url+"/metrics"); code != http.StatusUnauthorized {
		t.Fatalf("/metrics without a token: %d", code)
	}
	code, metrics := request(t, "GET", p.url+"/metrics", readSecret, "")
	if code != http.StatusOK {
		t.Fatalf("/metrics with a read token: %d", code)
	}
	for _, want := range []string{
		`batchy_http_requests_total{method="GET",route="/load_cfg/:wf",status="403"} 1`,
		`batchy_transitions_total{type="open",workflow="wf1"}`,
		`batchy_open_batches{workflow="wf1"} 3`,
		`batchy_active_waits 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	p.stop(t)
	for _, secret := range []string{readSecret, operateSecret, adminSecret} {
		if strings.Contains(p.logs.String(), secret) || strings.Contains(metrics, secret) {
			t.Errorf("a secret appears in the logs or metrics:\n%s", p.logs)
		}
	}
}

// TestProtectedMode: without tokens batchy refuses a non-loopback address, unless told it is
// fine; bad tokens, TLS and config flags are usage errors naming the problem.
func TestProtectedMode(t *testing.T) {
	public := "0.0.0.0:" + strings.Split(freeAddr(t), ":")[1]
	cases := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"no tokens on a public address", nil, []string{"--addr", public}, "refusing to serve " + public + " without tokens"},
		{"a token too short", []string{"BATCHY_TOKENS=admin ops short"}, []string{"--addr", public}, "at least 16 characters"},
		{"an unknown role", []string{"BATCHY_TOKENS=root ops " + adminSecret}, nil, `role "root" must be read, operate or admin`},
		{"a missing tokens file", nil, []string{"--tokens-file", "/nonexistent/tokens"}, "--tokens-file"},
		{"a certificate without a key", nil, []string{"--tls-cert", "cert.pem"}, "--tls-cert and --tls-key go together"},
		{"an unreadable certificate", nil, []string{"--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"}, "--tls-cert/--tls-key"},
		{"a tiny body limit", nil, []string{"--max-body-bytes", "10"}, "--max-body-bytes 10"},
		{"two Redis deployments", nil, []string{"--redis-url", "redis://127.0.0.1:1", "--redis-cluster", "127.0.0.1:2"}, "give only one of --redis-url, --redis-cluster and --redis-sentinel"},
		{"Sentinels without a master", nil, []string{"--redis-sentinel", "127.0.0.1:26379"}, "--redis-sentinel needs --redis-master"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(binary, append([]string{"serve", "--data-file", ""}, c.args...)...)
			cmd.Env = append(os.Environ(), c.env...)
			out, err := cmd.CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitUsage {
				t.Fatalf("exit %v, want %d; output:\n%s", err, exitUsage, out)
			}
			if !strings.Contains(string(out), c.want) {
				t.Errorf("output does not say %q:\n%s", c.want, out)
			}
			if strings.Contains(string(out), adminSecret) {
				t.Errorf("the error quotes the secret:\n%s", out)
			}
		})
	}

	// With --insecure-no-auth it serves on every address.
	cmd := exec.Command(binary, "serve", "--data-file", "", "--scheduler", "off", "--addr", public, "--insecure-no-auth")
	var logs lockedBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := rdbtest.StartCmd(cmd); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	url := "http://127.0.0.1:" + strings.Split(public, ":")[1]
	waitFor(t, func() bool {
		res, err := http.Get(url + "/healthz")
		if err == nil {
			res.Body.Close()
		}
		return err == nil
	}, "batchy with --insecure-no-auth to answer; logs:\n"+logs.String())
	if !strings.Contains(logs.String(), "auth=off") {
		t.Errorf("the start log does not say auth is off:\n%s", logs.String())
	}
}

// TestServeTLS: with a certificate and key batchy serves HTTPS only.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	addr := freeAddr(t)
	cmd := exec.Command(binary, "serve", "--data-file", "", "--scheduler", "off", "--addr", addr, "--tls-cert", certFile, "--tls-key", keyFile)
	var logs lockedBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := rdbtest.StartCmd(cmd); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 5 * time.Second}
	var body bytes.Buffer
	waitFor(t, func() bool {
		res, err := client.Get("https://" + addr + "/healthz")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		body.ReadFrom(res.Body)
		return res.StatusCode == http.StatusOK
	}, "batchy to answer over HTTPS; logs:\n"+logs.String())
	if !strings.Contains(body.String(), `"status":"ok"`) {
		t.Errorf("/healthz over HTTPS: %s", body.String())
	}
	if res, err := http.Get("http://" + addr + "/healthz"); err == nil {
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP was answered with 200 on the TLS port")
		}
	}
}

// TestConfigCommand: flags win over BATCHY_* variables, which win over the --config file; the file
// is strictly decoded; secrets are hidden.
func TestConfigCommand(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "batchy.yaml")
	os.WriteFile(file, []byte("addr: 127.0.0.1:7001\nhistory: 50\nprefix: fromfile\nlog-sink:\n  - stdout://\n  - postgres://batchy:pgpass@db/batchy\nalert-webhook: [https://hooks.example.com/services/T0/B0/hooksecret]\n"), 0o600)
	cmd := exec.Command(binary, "config", "--config", file, "--addr", "127.0.0.1:7003")
	cmd.Env = append(os.Environ(), "BATCHY_ADDR=127.0.0.1:7002", "BATCHY_HISTORY=60", "BATCHY_TOKENS=admin ops "+adminSecret,
		"BATCHY_REDIS_URL=redis://:redispass@redis:6379/0", "BATCHY_ALERT_WEBHOOK_JSON=http://a.example/x  http://b.example/y")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("batchy config: %v\n%s", err, out)
	}
	for _, want := range []string{
		"addr: 127.0.0.1:7003 # flag",
		"history: 60 # env BATCHY_HISTORY",
		"prefix: fromfile # file",
		"# log-sink: [stdout://, postgres://batchy:xxxxx@db/batchy] # file; secret hidden",
		"# alert-webhook: [https://hooks.example.com/(hidden)] # file; secret hidden",
		"# tokens: (set) # env BATCHY_TOKENS; secret hidden",
		"# redis-url: redis://:xxxxx@redis:6379/0 # env BATCHY_REDIS_URL; secret hidden",
		"tz: UTC # default",
		"# alert-webhook-json: [http://a.example/(hidden), http://b.example/(hidden)] # env BATCHY_ALERT_WEBHOOK_JSON; secret hidden",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("batchy config lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "\nconfig:") {
		t.Errorf("batchy config names the config file, so its output cannot be used as one:\n%s", out)
	}
	// The output, fed back as a config file, gives the same settings, the secrets left out.
	again := filepath.Join(dir, "again.yaml")
	os.WriteFile(again, out, 0o600)
	out2, err := exec.Command(binary, "config", "--config", again).CombinedOutput()
	if err != nil {
		t.Fatalf("batchy config --config <its own output>: %v\n%s", err, out2)
	}
	for _, want := range []string{"addr: 127.0.0.1:7003 # file", "history: 60 # file", "prefix: fromfile # file", "tokens: \"\" # default"} {
		if !strings.Contains(string(out2), want) {
			t.Errorf("fed back, the output lacks %q:\n%s", want, out2)
		}
	}
	for _, secret := range []string{adminSecret, "pgpass", "hooksecret", "redispass"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("batchy config shows the secret %q:\n%s", secret, out)
		}
	}

	os.WriteFile(file, []byte("addr: 127.0.0.1:7001\nredis_url: redis://x\n"), 0o600)
	out, err = exec.Command(binary, "config", "--config", file).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitUsage || !strings.Contains(string(out), `line 2: unknown key "redis_url"`) {
		t.Errorf("an unknown key: %v\n%s", err, out)
	}
	// export shares the file: serve's keys it does not have are skipped, its own are used.
	os.WriteFile(file, []byte("addr: 127.0.0.1:7001\ndata-file: "+filepath.Join(dir, "none.json")+"\n"), 0o600)
	out, err = exec.Command(binary, "export", "--config", file).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"workflows"`) {
		t.Errorf("export with serve's config file: %v\n%s", err, out)
	}
}

// waitFor polls cond for up to 15s.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// selfSigned writes a certificate and key for 127.0.0.1 and returns a pool that trusts it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "batchy test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestDeployConfig: the example config file of deploy/ is valid as shipped.
func TestDeployConfig(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens")
	os.WriteFile(tokens, []byte("admin ops "+auth.Hash(adminSecret)+"\n"), 0o600)
	cmd := exec.Command(binary, "config", "--config", "../../deploy/batchy.yaml")
	cmd.Env = append(os.Environ(), "BATCHY_TOKENS_FILE="+tokens)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("batchy config --config deploy/batchy.yaml: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "addr: 0.0.0.0:5000 # file") {
		t.Errorf("the file's addr is not used:\n%s", out)
	}
}

// TestHealthcheck: the container health check says ready for a running batchy, and fails for
// one that does not answer.
func TestHealthcheck(t *testing.T) {
	p := startServe(t, nil, "--data-file", "", "--scheduler", "off")
	addr := strings.TrimPrefix(p.url, "http://")
	port := strings.Split(addr, ":")[1]
	// As in the image: BATCHY_ADDR says 0.0.0.0, the check asks over loopback.
	cmd := exec.Command(binary, "healthcheck")
	cmd.Env = append(os.Environ(), "BATCHY_ADDR=0.0.0.0:"+port)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"status":"ok"`) {
		t.Fatalf("healthcheck of a running batchy: %v\n%s", err, out)
	}
	// The address from serve's config file.
	file := filepath.Join(t.TempDir(), "batchy.yaml")
	os.WriteFile(file, []byte("addr: "+addr+"\nhistory: 10\n"), 0o600)
	cmd = exec.Command(binary, "healthcheck")
	cmd.Env = append(os.Environ(), "BATCHY_CONFIG="+file)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("healthcheck with serve's config file: %v\n%s", err, out)
	}
	p.stop(t)
	out, err = exec.Command(binary, "healthcheck", "--addr", addr, "--timeout", "2s").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitError {
		t.Fatalf("healthcheck of a stopped batchy: %v, want exit %d\n%s", err, exitError, out)
	}
}

func TestSplitURLs(t *testing.T) {
	for in, want := range map[string][]string{
		"stdout:// nats://host:4222":                   {"stdout://", "nats://host:4222"},
		"  file:///var/log/my logs/b.jsonl  stdout://": {"file:///var/log/my logs/b.jsonl", "stdout://"},
		"https://hooks.example.com/a":                  {"https://hooks.example.com/a"},
	} {
		if got := splitURLs(in); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("splitURLs(%q) = %q, want %q", in, got, want)
		}
	}
}
