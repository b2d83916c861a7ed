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
)

const (
	imgName       = "localhost/nebula_explorer_exporter:test"
	imgConfigPath = "/etc/nebula_explorer_exporter/config.yml"
	imgBinary     = "/bin/nebula_explorer_exporter"
	imgCABundle   = "/etc/ssl/certs/ca-certificates.crt"
)

// imgPodman runs podman against a private storage (vfs: nothing stays
// mounted if the test dies) and the runc runtime, which works on our
// machines where crun does not.
type imgPodman struct {
	bin, root, runroot string
}

func (p imgPodman) args(args ...string) []string {
	return append([]string{"--root", p.root, "--runroot", p.runroot, "--storage-driver", "vfs", "--runtime", "runc"}, args...)
}

func (p imgPodman) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, p.bin, p.args(args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("podman %s: %w\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out, nil
}

// TestImageBuildsAndServesMetrics builds the image offline with
// deploy/build-image.sh (what `make image` runs), checks its metadata and
// content, then runs it with runc against the simulator and reads
// nebula_explorer_up 1 from its /metrics.
func TestImageBuildsAndServesMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a container image")
	}
	podman := imgPodman{bin: needTool(t, "podman")}
	needTool(t, "runc")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	tmp, err := os.MkdirTemp("", "nee-image-test-")
	if err != nil {
		t.Fatal(err)
	}
	podman.root, podman.runroot = filepath.Join(tmp, "root"), filepath.Join(tmp, "runroot")
	t.Cleanup(func() {
		// podman may leave files it cannot remove as a plain rm would
		// (read-only layers); reset removes its storage, then the rest goes.
		cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
		defer ccancel()
		if out, err := podman.run(cctx, "system", "reset", "--force"); err != nil {
			t.Logf("podman system reset: %v %s", err, out)
		}
		if err := os.RemoveAll(tmp); err != nil {
			t.Errorf("removing %s: %v", tmp, err)
		}
	})

	// Build exactly as `make image` does.
	build := exec.CommandContext(ctx, "./build-image.sh")
	build.Env = append(os.Environ(),
		"IMAGE="+imgName,
		"PODMAN="+podman.bin,
		"PODMAN_ROOT="+podman.root,
		"PODMAN_RUNROOT="+podman.runroot,
		"PODMAN_STORAGE_DRIVER=vfs",
	)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("deploy/build-image.sh: %v\n%s", err, out)
	}

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
		addr := stackFreeAddr(t)
		out, err := podman.run(ctx, "run", "--rm", "-d",
			"--network=host",
			"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
			"-v", cfg+":"+imgConfigPath+":ro",
			imgName,
			"--config.file="+imgConfigPath, "--web.listen-address="+addr)
		if err != nil {
			t.Fatal(err)
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
	addr := stackFreeAddr(t)
	var logs bytes.Buffer
	sim := exec.Command(bin, "--web.listen-address="+addr)
	sim.Stdout, sim.Stderr = &logs, &logs
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sim.Process.Kill() //nolint:errcheck
		sim.Wait()         //nolint:errcheck
		if t.Failed() {
			t.Logf("simulator output:\n%s", imgHead(logs.String(), 40))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("simulator never listened on %s: %v\n%s", addr, err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
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

func TestBuildImageScriptPassesShellcheck(t *testing.T) {
	shellcheck := needTool(t, "shellcheck")
	if out, err := exec.Command(shellcheck, "build-image.sh").CombinedOutput(); err != nil {
		t.Fatalf("shellcheck deploy/build-image.sh: %v\n%s", err, out)
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

	// .dockerignore keeps the context small but lets every stage find its
	// files.
	ignore, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"!.build/image/", "!deploy/simulator/", "!go.mod", "!go.sum", "!*.go", "!collector/", "!internal/"} {
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
	promtool := needTool(t, "promtool")
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
	dc := needTool(t, "docker-compose")
	cmd := exec.Command(dc, "--file", "docker-compose.yml", "config", "--quiet")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
}
