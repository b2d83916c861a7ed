package deploy_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/config"
	"github.com/nebula-contrib/nebula_explorer_exporter/internal/localtest"
)

const (
	imgName       = "localhost/nebula_explorer_exporter:test"
	imgConfigPath = "/etc/nebula_explorer_exporter/config.yml"
	imgBinary     = "/bin/nebula_explorer_exporter"
	imgCABundle   = "/etc/ssl/certs/ca-certificates.crt"
)

// imgPodman runs podman with state of its own, so that test runs sharing a
// host never meet: storage (--root, vfs: nothing stays mounted if the test
// dies), run root, libpod's tmp dir and its locks (file locks in that tmp
// dir instead of the host-wide shared-memory segment), TMPDIR and
// XDG_RUNTIME_DIR all live in the test's temporary directory. It uses the
// runc runtime, which works on our machines where crun does not.
type imgPodman struct {
	bin, root, runroot string
	env                []string
}

func newImgPodman(t *testing.T) imgPodman {
	t.Helper()
	// Not t.TempDir(): podman refuses a runroot longer than 50 characters.
	dir, err := os.MkdirTemp("", "nee-img-")
	if err != nil {
		t.Fatal(err)
	}
	p := imgPodman{bin: localtest.NeedTool(t, "podman"), root: filepath.Join(dir, "root"), runroot: filepath.Join(dir, "runroot")}
	for _, d := range []string{"libpod", "tmp", "xdg"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "containers.conf")
	text := fmt.Sprintf("[engine]\ntmp_dir = %q\nlock_type = \"file\"\nvolume_path = %q\nevents_logger = \"file\"\n",
		filepath.Join(dir, "libpod"), filepath.Join(dir, "volumes"))
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	p.env = []string{
		"CONTAINERS_CONF=" + conf,
		"TMPDIR=" + filepath.Join(dir, "tmp"),
		"XDG_RUNTIME_DIR=" + filepath.Join(dir, "xdg"),
	}
	// No container may keep a mount in the directory when it goes; this
	// touches only this run's podman state (never `podman system reset`).
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := p.run(ctx, "rm", "--all", "--force"); err != nil {
			t.Logf("podman rm --all: %v %s", err, out)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing %s: %v", dir, err)
		}
	})
	return p
}

func (p imgPodman) args(args ...string) []string {
	return append([]string{"--root", p.root, "--runroot", p.runroot, "--storage-driver", "vfs", "--runtime", "runc"}, args...)
}

func (p imgPodman) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, p.bin, p.args(args...)...)
	cmd.Env = append(os.Environ(), p.env...)
	return cmd
}

func (p imgPodman) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := p.command(ctx, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("podman %s: %w\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out, nil
}

// The version stamp the test builds the image with.
const (
	imgVersion  = "1.2.3-imagetest"
	imgRevision = "0123456789abcdef"
)

// TestImageBuildsAndServesMetrics builds the image offline with
// deploy/build-image.sh (what `make image` runs), checks its metadata,
// content, version stamp and SBOM, then runs it with runc, as the README
// says, against the simulator and reads nebula_explorer_up 1 from its
// /metrics.
func TestImageBuildsAndServesMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a container image")
	}
	podman := newImgPodman(t)
	localtest.NeedTool(t, "runc")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	tmp := t.TempDir()
	sbom := filepath.Join(tmp, "sbom.cdx.json")

	// Build exactly as `make image` does.
	build := exec.CommandContext(ctx, "./build-image.sh")
	build.Env = append(os.Environ(), podman.env...)
	build.Env = append(build.Env,
		"IMAGE="+imgName,
		"PODMAN="+podman.bin,
		"PODMAN_ROOT="+podman.root,
		"PODMAN_RUNROOT="+podman.runroot,
		"PODMAN_STORAGE_DRIVER=vfs",
		"OUT="+filepath.Join(tmp, "image"),
		"SBOM="+sbom,
		"VERSION="+imgVersion,
		"REVISION="+imgRevision,
	)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("deploy/build-image.sh: %v\n%s", err, out)
	}
	toolchain := makefileToolchain(t)

	t.Run("metadata", func(t *testing.T) {
		out, err := podman.run(ctx, "image", "inspect", "--format", "{{json .Config}}", imgName)
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			User         string
			ExposedPorts map[string]any
			Entrypoint   []string
			Cmd          []string
		}
		if err := json.Unmarshal(out, &cfg); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if user, _, _ := strings.Cut(cfg.User, ":"); user != "65534" {
			t.Errorf("image user %q, want 65534", cfg.User)
		}
		if _, ok := cfg.ExposedPorts["9064/tcp"]; !ok || len(cfg.ExposedPorts) != 1 {
			t.Errorf("exposed ports %v, want 9064/tcp", cfg.ExposedPorts)
		}
		if !slices.Equal(cfg.Entrypoint, []string{imgBinary}) {
			t.Errorf("entrypoint %v, want [%s]", cfg.Entrypoint, imgBinary)
		}
		if !slices.Equal(cfg.Cmd, []string{"--config.file=" + imgConfigPath}) {
			t.Errorf("cmd %v, want [--config.file=%s]", cfg.Cmd, imgConfigPath)
		}
	})

	t.Run("content", func(t *testing.T) {
		// The root filesystem: the binary and the CA bundle, no shell.
		id, err := podman.run(ctx, "create", imgName)
		if err != nil {
			t.Fatal(err)
		}
		cid := strings.TrimSpace(string(id))
		defer podman.run(context.Background(), "rm", "--force", cid) //nolint:errcheck
		tarball, err := podman.run(ctx, "export", cid)
		if err != nil {
			t.Fatal(err)
		}
		files := map[string]int64{}
		tr := tar.NewReader(bytes.NewReader(tarball))
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Typeflag == tar.TypeReg {
				files["/"+strings.TrimPrefix(h.Name, "/")] = h.Size
			}
		}
		for _, want := range []string{imgBinary, imgCABundle} {
			if files[want] == 0 {
				t.Errorf("image has no %s (files: %v)", want, files)
			}
		}
		for _, shell := range []string{"/bin/sh", "/bin/bash", "/bin/busybox"} {
			if _, ok := files[shell]; ok {
				t.Errorf("image contains %s", shell)
			}
		}
		var total int64
		for _, size := range files {
			total += size
		}
		if total > 40<<20 {
			t.Errorf("image content is %d MiB, want a small static image", total>>20)
		}
	})

	t.Run("version", func(t *testing.T) {
		// kingpin prints the version on stderr.
		out, err := podman.command(ctx, "run", "--rm", "--network=none",
			"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
			imgName, "--version").CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		for _, want := range []string{"version " + imgVersion + " ", "revision: " + imgRevision + ")", "go version:       " + toolchain + "\n"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("--version lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("sbom", func(t *testing.T) {
		// The SBOM lists exactly the modules linked into the binary (as Go
		// records them in it) at the versions go.mod requires, and the
		// standard library at the toolchain's version.
		var bom struct {
			BOMFormat string `json:"bomFormat"`
			Metadata  struct {
				Component struct{ Name, Version string }
			}
			Components []struct{ Name, Version, Purl string }
		}
		if err := json.Unmarshal(readFile(t, sbom), &bom); err != nil {
			t.Fatal(err)
		}
		if bom.BOMFormat != "CycloneDX" {
			t.Errorf("bomFormat %q, want CycloneDX", bom.BOMFormat)
		}
		mod := goModRequires(t)
		if c := bom.Metadata.Component; c.Name != mod.Module.Path || c.Version != "v"+imgVersion {
			t.Errorf("SBOM describes %s@%s, want %s@v%s", c.Name, c.Version, mod.Module.Path, imgVersion)
		}
		listed := map[string]string{}
		for _, c := range bom.Components {
			if !strings.HasPrefix(c.Purl, "pkg:golang/"+c.Name+"@"+c.Version) {
				t.Errorf("component %s@%s has purl %s", c.Name, c.Version, c.Purl)
			}
			listed[c.Name] = c.Version
		}
		if v := listed["std"]; v != toolchain {
			t.Errorf("SBOM lists std@%q, want %s", v, toolchain)
		}
		delete(listed, "std")
		linked := binaryDeps(t, filepath.Join(tmp, "image", "nebula_explorer_exporter"))
		if len(linked) == 0 {
			t.Fatal("go version -m lists no modules in the binary")
		}
		for path, v := range linked {
			if listed[path] != v {
				t.Errorf("the binary links %s@%s, the SBOM lists %q", path, v, listed[path])
			}
			if mod.Require[path] != v {
				t.Errorf("the binary links %s@%s, go.mod requires %q", path, v, mod.Require[path])
			}
		}
		for path, v := range listed {
			if _, ok := linked[path]; !ok {
				t.Errorf("the SBOM lists %s@%s, which the binary does not link", path, v)
			}
		}
	})

	t.Run("serves metrics", func(t *testing.T) {
		simAddr := imgStartSimulator(t, ctx)
		cfg := filepath.Join(tmp, "config.yml")
		cfgText := fmt.Sprintf("explorer:\n  url: http://%s\n  username: root\n  password: nebula\n  graph_address: 127.0.0.1\n  graph_port: 9669\n", simAddr)
		if err := os.WriteFile(cfg, []byte(cfgText), 0o644); err != nil {
			t.Fatal(err)
		}
		// Readable by the container's user 65534 through the bind mount.
		if err := os.Chmod(tmp, 0o755); err != nil {
			t.Fatal(err)
		}
		// The README's command, verbatim but detached (-d) and with the
		// listen address of this test appended.
		addr := localtest.FreeAddr(t)
		args := append([]string{"run", "-d"}, readmePodmanRun(t)[2:]...)
		args = append(args, "--config.file="+imgConfigPath, "--web.listen-address="+addr)
		for i, a := range args {
			if a == "localhost/nebula_explorer_exporter:dev" {
				args[i] = imgName
			}
		}
		run := podman.command(ctx, args...)
		run.Dir = tmp // where ./config.yml is
		var stderr bytes.Buffer
		run.Stderr = &stderr
		out, err := run.Output()
		if err != nil {
			t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
		}
		cid := strings.TrimSpace(string(out))
		t.Cleanup(func() {
			cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
			defer ccancel()
			if logs, err := podman.run(cctx, "logs", cid); err == nil && t.Failed() {
				t.Logf("container logs:\n%s", logs)
			}
			podman.run(cctx, "stop", "--time", "5", cid) //nolint:errcheck
			podman.run(cctx, "rm", "--force", cid)       //nolint:errcheck
		})

		up := regexp.MustCompile(`(?m)^nebula_explorer_up 1$`)
		var body string
		deadline := time.Now().Add(60 * time.Second)
		for {
			body, err = imgGet(ctx, "http://"+addr+"/metrics")
			if err == nil && up.MatchString(body) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the container's /metrics never showed nebula_explorer_up 1 (last error %v):\n%s", err, imgHead(body, 40))
			}
			time.Sleep(500 * time.Millisecond)
		}
		if !strings.Contains(body, "nebula_explorer_jobs{") {
			t.Errorf("/metrics has no nebula_explorer_jobs series:\n%s", imgHead(body, 40))
		}
		// Stamped by deploy/version-ldflags.sh, built with the Makefile's toolchain.
		for _, label := range []string{`goversion="` + toolchain + `"`, `version="` + imgVersion + `"`, `revision="` + imgRevision + `"`} {
			if !regexp.MustCompile(`(?m)^nebula_explorer_exporter_build_info\{.*` + regexp.QuoteMeta(label) + `.*\} 1$`).MatchString(body) {
				t.Errorf("build_info lacks %s:\n%s", label, grepLines(body, "build_info"))
			}
		}
		if landing, err := imgGet(ctx, "http://"+addr+"/"); err != nil || !strings.Contains(landing, "/metrics") {
			t.Errorf("landing page: %v %q", err, imgHead(landing, 10))
		}

		// The process runs as nobody.
		pid, err := podman.run(ctx, "inspect", "--format", "{{.State.Pid}}", cid)
		if err != nil {
			t.Fatal(err)
		}
		status, err := os.ReadFile(filepath.Join("/proc", strings.TrimSpace(string(pid)), "status"))
		if err != nil {
			t.Fatal(err)
		}
		if m := regexp.MustCompile(`(?m)^Uid:\s+(\d+)\s+(\d+)`).FindSubmatch(status); m == nil || string(m[1]) != "65534" || string(m[2]) != "65534" {
			t.Errorf("container process uid line %q, want 65534", m)
		}
	})
}

// imgStartSimulator builds deploy/simulator and runs it on 127.0.0.1 until
// the test ends; it returns its address.
func imgStartSimulator(t *testing.T, ctx context.Context) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "simulator")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./deploy/simulator")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./deploy/simulator: %v\n%s", err, out)
	}
	addr := localtest.FreeAddr(t)
	logFile := filepath.Join(t.TempDir(), "simulator.log")
	stackStart(t, logFile, bin, "--web.listen-address="+addr)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("simulator output:\n%s", imgHead(string(b), 40))
		}
	})
	stackWaitListening(t, addr, logFile)
	return addr
}

// readmePodmanRun returns the fields of the README's `podman run` command.
func readmePodmanRun(t *testing.T) []string {
	t.Helper()
	text := strings.ReplaceAll(string(readFile(t, "../README.md")), "\\\n", " ")
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && f[0] == "podman" && f[1] == "run" {
			if i := slices.Index(f, "#"); i >= 0 {
				f = f[:i]
			}
			return f
		}
	}
	t.Fatal("README.md has no `podman run` command")
	return nil
}

// goMod is what `go mod edit -json` prints of go.mod.
type goMod struct {
	Module  struct{ Path string }
	Require map[string]string // module path -> version
}

func goModRequires(t *testing.T) goMod {
	t.Helper()
	out, err := exec.Command("go", "mod", "edit", "-json", "../go.mod").Output()
	if err != nil {
		t.Fatalf("go mod edit -json: %v", err)
	}
	var raw struct {
		Module  struct{ Path string }
		Require []struct{ Path, Version string }
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		t.Fatal(err)
	}
	m := goMod{Module: raw.Module, Require: map[string]string{}}
	for _, r := range raw.Require {
		m.Require[r.Path] = r.Version
	}
	return m
}

// binaryDeps returns the modules Go recorded in a binary (`go version -m`).
func binaryDeps(t *testing.T, bin string) map[string]string {
	t.Helper()
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatalf("go version -m %s: %v", bin, err)
	}
	deps := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "dep" {
			deps[f[1]] = f[2]
		}
	}
	return deps
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func imgGet(ctx context.Context, u string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return string(body), nil
}

func imgHead(s string, lines int) string {
	l := strings.SplitN(s, "\n", lines+1)
	if len(l) > lines {
		l = append(l[:lines], "...")
	}
	return strings.Join(l, "\n")
}

func TestShellScriptsPassShellcheck(t *testing.T) {
	shellcheck := localtest.NeedTool(t, "shellcheck")
	scripts := []string{"build-image.sh", "demo.sh", "version-ldflags.sh", "../.ci/run"}
	if out, err := exec.Command(shellcheck, scripts...).CombinedOutput(); err != nil {
		t.Fatalf("shellcheck %v: %v\n%s", scripts, err, out)
	}
}

func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	// Stages by name, and the instructions of each.
	stages := map[string][]string{}
	var order []string
	cur := ""
	text := strings.ReplaceAll(string(data), "\\\n", " ")
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if strings.EqualFold(f[0], "FROM") {
			cur = f[1]
			if len(f) == 4 && strings.EqualFold(f[2], "AS") {
				cur = f[3]
			}
			order = append(order, cur)
		}
		stages[cur] = append(stages[cur], line)
	}
	if len(order) == 0 || order[len(order)-1] != "image" {
		t.Fatalf("stages %v: the last (default) stage must be \"image\", the offline one", order)
	}
	// The default target and everything it derives from must need no pull.
	for stage := "image"; ; {
		from := strings.Fields(stages[stage][0])[1]
		if from == "scratch" {
			break
		}
		if _, ok := stages[from]; !ok {
			t.Fatalf("stage %s is FROM %s: the default target must build without pulling", stage, from)
		}
		stage = from
	}
	all := strings.Join(append(stages["base"], stages["image"]...), "\n")
	for _, want := range []string{
		"USER 65534:65534",
		"EXPOSE 9064",
		`ENTRYPOINT ["` + imgBinary + `"]`,
		`CMD ["--config.file=` + imgConfigPath + `"]`,
		"COPY .build/image/nebula_explorer_exporter " + imgBinary,
		"COPY .build/image/ca-certificates.crt " + imgCABundle,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("the default image lacks %q", want)
		}
	}
	for _, stage := range []string{"from-source", "simulator"} {
		if _, ok := stages[stage]; !ok {
			t.Errorf("no stage %s (documented, used by docker-compose.yml)", stage)
		}
	}
	if !strings.Contains(string(data), "CGO_ENABLED=0") {
		t.Error("the from-source build is not static (CGO_ENABLED=0)")
	}
	// Stamped like `make build` and the default image.
	if !strings.Contains(strings.Join(stages["builder"], "\n"), "deploy/version-ldflags.sh") {
		t.Error("the from-source build does not stamp the version with deploy/version-ldflags.sh")
	}

	// .dockerignore keeps the context small but lets every stage find its
	// files.
	ignore, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"!.build/image/", "!deploy/simulator/", "!deploy/version-ldflags.sh", "!go.mod", "!go.sum", "!*.go", "!collector/", "!internal/"} {
		if !slices.Contains(strings.Split(string(ignore), "\n"), want) {
			t.Errorf(".dockerignore lacks %q", want)
		}
	}
}

// composeFile is what the tests read of deploy/docker-compose.yml.
type composeFile struct {
	Services map[string]struct {
		Image string `yaml:"image"`
		Build *struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
			Target     string `yaml:"target"`
		} `yaml:"build"`
		Command []string `yaml:"command"`
		Volumes []string `yaml:"volumes"`
		Ports   []string `yaml:"ports"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

func TestComposeStackIsWiredUp(t *testing.T) {
	var c composeFile
	readYAML(t, "docker-compose.yml", &c)
	for _, s := range []string{"simulator", "exporter", "prometheus", "alertmanager", "grafana"} {
		if _, ok := c.Services[s]; !ok {
			t.Errorf("docker-compose.yml has no service %s", s)
		}
	}
	mounts := map[string]string{} // container path -> host path
	for name, s := range c.Services {
		if s.Build != nil {
			if s.Build.Context != ".." || (s.Build.Dockerfile != "" && s.Build.Dockerfile != "Dockerfile") {
				t.Errorf("service %s builds %+v, want the repository's Dockerfile", name, *s.Build)
			}
		} else if s.Image == "" {
			t.Errorf("service %s has neither build nor image", name)
		}
		for _, v := range s.Volumes {
			parts := strings.Split(v, ":")
			host := parts[0]
			if strings.HasPrefix(host, ".") {
				if _, err := os.Stat(host); err != nil {
					t.Errorf("service %s mounts %s, which does not exist", name, host)
				}
				mounts[name+" "+parts[1]] = host
			} else if _, ok := c.Volumes[host]; !ok {
				t.Errorf("service %s uses volume %s, which is not declared", name, host)
			}
		}
	}
	if got := c.Services["exporter"].Build; got == nil || got.Target != "from-source" {
		t.Errorf("exporter builds %+v, want target from-source", got)
	}
	if got := c.Services["simulator"].Build; got == nil || got.Target != "simulator" {
		t.Errorf("simulator builds %+v, want target simulator", got)
	}

	// The exporter's config: valid for the exporter, pointing at the simulator.
	cfgHost := mounts["exporter "+imgConfigPath]
	if cfgHost == "" {
		t.Fatalf("the exporter service mounts nothing at %s", imgConfigPath)
	}
	data, err := os.ReadFile(cfgHost)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(data)
	if err != nil {
		t.Fatalf("%s: the exporter rejects it: %v", cfgHost, err)
	}
	u, err := url.Parse(cfg.Explorer.URL)
	if err != nil || u.Hostname() != "simulator" {
		t.Errorf("%s: explorer.url %q, want the simulator service", cfgHost, cfg.Explorer.URL)
	}
	simListen := ""
	for _, arg := range c.Services["simulator"].Command {
		if a, ok := strings.CutPrefix(arg, "--web.listen-address="); ok {
			simListen = a
		}
	}
	if _, port, _ := net.SplitHostPort(simListen); u != nil && port != u.Port() {
		t.Errorf("simulator listens on %q but the exporter calls %s", simListen, cfg.Explorer.URL)
	}

	// Prometheus: the compose config scrapes the exporter service, sends to
	// the alertmanager service and loads the same rules as
	// deploy/prometheus/prometheus.yml (mounted at /etc/prometheus/rules).
	promCfgHost := mounts["prometheus /etc/prometheus/prometheus.yml"]
	if mounts["prometheus /etc/prometheus/rules"] != "./prometheus" || promCfgHost == "" {
		t.Fatalf("prometheus mounts %v, want its config at /etc/prometheus/prometheus.yml and ./prometheus at /etc/prometheus/rules", mounts)
	}
	var promCfg, mainCfg prometheusConfig
	readYAML(t, promCfgHost, &promCfg)
	readYAML(t, prometheusYML, &mainCfg)
	var want []string
	for _, f := range mainCfg.RuleFiles {
		want = append(want, "rules/"+f)
	}
	if !slices.Equal(promCfg.RuleFiles, want) {
		t.Errorf("%s rule_files %v, want %v (those of %s)", promCfgHost, promCfg.RuleFiles, want, prometheusYML)
	}
	job := k8sPrometheusJobName(t)
	scraped := false
	for _, sc := range promCfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			if sc.JobName == job && slices.Contains(st.Targets, "exporter:9064") {
				scraped = true
			}
		}
	}
	if !scraped {
		t.Errorf("%s does not scrape exporter:9064 in job %s", promCfgHost, job)
	}
	am := false
	for _, a := range promCfg.Alerting.Alertmanagers {
		for _, st := range a.StaticConfigs {
			am = am || slices.Contains(st.Targets, "alertmanager:9093")
		}
	}
	if !am {
		t.Errorf("%s does not send alerts to alertmanager:9093", promCfgHost)
	}

	// promtool accepts it, with the rule files where the container has them.
	promtool := localtest.NeedTool(t, "promtool")
	dir := t.TempDir()
	abs, _ := filepath.Abs("prometheus")
	if err := os.Symlink(abs, filepath.Join(dir, "rules")); err != nil {
		t.Fatal(err)
	}
	copyTo := filepath.Join(dir, "prometheus.yml")
	raw, _ := os.ReadFile(promCfgHost)
	if err := os.WriteFile(copyTo, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "config", copyTo).CombinedOutput(); err != nil {
		t.Errorf("promtool check config %s: %v\n%s", promCfgHost, err, out)
	}

	// Alertmanager's config file is where the mount puts it.
	if h := mounts["alertmanager /etc/alertmanager"]; h != "" {
		if _, err := os.Stat(filepath.Join(h, "alertmanager.yml")); err != nil {
			t.Errorf("alertmanager: %v", err)
		}
	}
}

// TestComposeFileValidates checks the file against the Compose schema with
// docker-compose, which needs no Docker daemon for `config`.
func TestComposeFileValidates(t *testing.T) {
	dc := localtest.NeedTool(t, "docker-compose")
	cmd := exec.Command(dc, "--file", "docker-compose.yml", "config", "--quiet")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
}
