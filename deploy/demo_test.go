package deploy_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/localtest"
)

// TestDemoRefusesTakenAddresses: `make demo` (deploy/demo.sh) fails and
// names the address when something already listens on the simulator's or
// the exporter's, instead of printing a URL that leads to another program.
func TestDemoRefusesTakenAddresses(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tc := range []struct{ name, explorer, listen string }{
		{"simulator", taken.Addr().String(), localtest.FreeAddr(t)},
		{"exporter", localtest.FreeAddr(t), taken.Addr().String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "./demo.sh")
			// No binaries: the check comes before anything starts.
			cmd.Env = append(cmd.Environ(), "BIN="+t.TempDir(), "EXPLORER_ADDR="+tc.explorer, "LISTEN_ADDR="+tc.listen)
			out, err := cmd.CombinedOutput()
			if exit := (*exec.ExitError)(nil); !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("demo.sh: %v, want exit status 1\n%s", err, out)
			}
			if want := taken.Addr().String() + " is already in use"; !strings.Contains(string(out), want) {
				t.Errorf("demo.sh says %q, want it to say %q", out, want)
			}
		})
	}
}

// TestMakeDemo runs `make demo` on free addresses: the exporter reads the
// simulator, its build_info carries the version stamp of `make build`, and
// SIGTERM stops everything.
func TestMakeDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the demo")
	}
	makeBin := localtest.NeedTool(t, "make")
	explorer, listen := localtest.FreeAddr(t), localtest.FreeAddr(t)
	var out bytes.Buffer
	cmd := exec.Command(makeBin, "-C", "..", "demo", "BIN="+t.TempDir(), "DEMO_EXPLORER="+explorer, "DEMO_LISTEN="+listen)
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group, so one signal reaches make, the script and
	// both servers.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) //nolint:errcheck
			<-done
		}
		if t.Failed() {
			t.Logf("make demo output:\n%s", stackTail(out.String(), 40))
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	up := regexp.MustCompile(`(?m)^nebula_explorer_up 1$`)
	for {
		body, err := imgGet(ctx, "http://"+listen+"/metrics")
		if err == nil && up.MatchString(body) {
			if !regexp.MustCompile(`(?m)^nebula_explorer_exporter_build_info\{.*revision="[0-9a-f]{40}".*version="[^"]+".*\} 1$`).MatchString(body) {
				t.Errorf("build_info of `make build` is not stamped:\n%s", grepLines(body, "build_info"))
			}
			break
		}
		select {
		case err := <-done:
			stopped = true
			t.Fatalf("make demo ended before serving nebula_explorer_up 1: %v", err)
		case <-ctx.Done():
			t.Fatalf("no nebula_explorer_up 1 on http://%s/metrics (last error %v)", listen, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		stopped = true
	case <-time.After(30 * time.Second):
		t.Fatal("make demo did not stop within 30 s of SIGTERM")
	}
	// out is complete (and no longer written) once Wait has returned.
	if !strings.Contains(out.String(), ">> metrics: http://"+listen+"/metrics") {
		t.Errorf("make demo did not print its URL")
	}
	for _, addr := range []string{explorer, listen} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still listens after the demo stopped", addr)
		}
	}
}
