// Package localtest is what the project's tests share: running programs on
// this machine (addresses on 127.0.0.1 to start them on, waiting until they
// listen, finding the external programs the tests need: the Debian
// packages, and Prometheus 3 as deploy/prometheus3.sh builds it) and a fake
// clock. Only tests import it.
package localtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// given are the addresses FreeAddr handed out in this test binary.
var given = struct {
	sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

// FreeAddr returns an address on 127.0.0.1 that nothing listened on just
// now and that it has not returned before in this test binary: once its
// probe listener is closed the kernel may offer the same port again, before
// the program it was meant for binds it (the exporter and Alertmanager of
// one stack were once given the same port).
func FreeAddr(t testing.TB) string {
	t.Helper()
	given.Lock()
	defer given.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		if !given.addrs[addr] {
			given.addrs[addr] = true
			return addr
		}
	}
}

// WaitListening waits up to within for a TCP listener on addr: a program
// started there is ready to answer.
func WaitListening(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after %v: %w", addr, within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// NeedTool returns the path of an external program a test needs. Outside CI
// a missing program skips the test; in CI (CI set) it fails it, since .ci/run
// must have installed it (README, "Try it, test it", names the Debian
// packages).
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed: .ci/run must install it", name)
	}
	t.Skipf("%s is not installed; skipping (CI fails instead)", name)
	return ""
}

// Prometheus3 returns where Prometheus 3's prometheus or promtool (name)
// is once script (deploy/prometheus3.sh, as the test's working directory
// sees it) has built it: in its cache, $PROMETHEUS3_CACHE (by default
// $(go env GOPATH)/prometheus3), under the version pinned in the script.
func Prometheus3(script, name string) (string, error) {
	text, err := os.ReadFile(script)
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`(?m)^version=(v[0-9.]+)$`).FindSubmatch(text)
	if m == nil {
		return "", fmt.Errorf("%s: no line version=vX.Y.Z", script)
	}
	cache := os.Getenv("PROMETHEUS3_CACHE")
	if cache == "" {
		out, err := exec.Command("go", "env", "GOPATH").Output()
		if err != nil {
			return "", fmt.Errorf("go env GOPATH: %w", err)
		}
		cache = filepath.Join(strings.TrimSpace(string(out)), "prometheus3")
	}
	return filepath.Join(cache, string(m[1]), name), nil
}

// NeedPrometheus3 is the path Prometheus3 returns, for a test that needs
// the binary built: outside CI a missing one skips the test; in CI (CI set)
// it fails it.
func NeedPrometheus3(t testing.TB, script, name string) string {
	t.Helper()
	path, err := Prometheus3(script, name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("Prometheus 3 is not built at %s: run deploy/prometheus3.sh (CI does)", path)
	}
	t.Skipf("Prometheus 3 is not built at %s; run deploy/prometheus3.sh (CI fails instead)", path)
	return ""
}
