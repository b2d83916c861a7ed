package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/config"
	"github.com/nebula-contrib/nebula_explorer_exporter/internal/localtest"
)

const (
	k8sDir             = "kubernetes"
	k8sConfigPath      = "/etc/nebula_explorer_exporter/config.yml"
	k8sNobody          = 65534
	k8sAppLabel        = "app.kubernetes.io/name"
	k8sAppName         = "nebula-explorer-exporter"
	k8sExporterPort    = 9064
	k8sMetricsPortName = "metrics"
)

// k8sObject is one manifest, decoded loosely.
type k8sObject struct {
	file string
	doc  map[string]any
}

func (o k8sObject) kind() string { return asStr(o.doc["kind"]) }
func (o k8sObject) name() string { return asStr(dig(o.doc, "metadata", "name")) }

// k8sManifests decodes every YAML document under deploy/kubernetes except
// the kustomization.
func k8sManifests(t *testing.T) []k8sObject {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var objs []k8sObject
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var doc map[string]any
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if doc == nil {
				continue
			}
			for _, key := range []string{"apiVersion", "kind"} {
				if asStr(doc[key]) == "" {
					t.Errorf("%s: a document has no %s", f, key)
				}
			}
			if asStr(dig(doc, "metadata", "name")) == "" {
				t.Errorf("%s: a %s has no metadata.name", f, doc["kind"])
			}
			if dig(doc, "metadata", "namespace") != nil {
				t.Errorf("%s: %s sets metadata.namespace; the manifests are namespace-less (kubectl -n / kustomize namespace:)", f, doc["kind"])
			}
			objs = append(objs, k8sObject{file: f, doc: doc})
		}
	}
	if len(objs) == 0 {
		t.Fatal("no manifests under deploy/kubernetes")
	}
	return objs
}

// k8sOne returns the only object of a kind.
func k8sOne(t *testing.T, objs []k8sObject, kind string) k8sObject {
	t.Helper()
	var found []k8sObject
	for _, o := range objs {
		if o.kind() == kind {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one %s in deploy/kubernetes, found %d", kind, len(found))
	}
	return found[0]
}

func TestKubernetesManifestsPassYamllint(t *testing.T) {
	yamllint := localtest.NeedTool(t, "yamllint")
	args := []string{"-s", "-f", "parsable"}
	// deploy/.yamllint, the configuration for all YAML under deploy/, when
	// there is one; yamllint's defaults otherwise.
	if _, err := os.Stat(".yamllint"); err == nil {
		args = append(args, "-c", ".yamllint")
	}
	out, err := exec.Command(yamllint, append(args, k8sDir)...).CombinedOutput()
	if err != nil {
		t.Fatalf("yamllint %s: %v\n%s", k8sDir, err, out)
	}
}

func TestKustomizationListsEveryManifest(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(k8sDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Kind      string   `yaml:"kind"`
		Resources []string `yaml:"resources"`
		Images    []struct {
			Name string `yaml:"name"`
		} `yaml:"images"`
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatal(err)
	}
	if k.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml: kind %q", k.Kind)
	}
	files, _ := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	var want []string
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" {
			want = append(want, b)
		}
	}
	got := slices.Clone(k.Resources)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("kustomization.yaml resources = %v, want every manifest: %v", got, want)
	}

	dep := k8sOne(t, k8sManifests(t), "Deployment")
	image := asStr(dig(k8sContainer(t, dep), "image"))
	if !slices.ContainsFunc(k.Images, func(i struct {
		Name string `yaml:"name"`
	}) bool {
		return i.Name == image
	}) {
		t.Errorf("kustomization.yaml images has no entry for the Deployment's image %q", image)
	}
}

// k8sContainer returns the exporter's container of the Deployment.
func k8sContainer(t *testing.T, dep k8sObject) map[string]any {
	t.Helper()
	cs, _ := dig(dep.doc, "spec", "template", "spec", "containers").([]any)
	if len(cs) != 1 {
		t.Fatalf("Deployment: want one container, got %d", len(cs))
	}
	c, _ := cs[0].(map[string]any)
	return c
}

func TestDeploymentIsHardened(t *testing.T) {
	objs := k8sManifests(t)
	dep := k8sOne(t, objs, "Deployment")
	pod := dig(dep.doc, "spec", "template", "spec")
	c := k8sContainer(t, dep)

	// Selector and labels tie Deployment, Service and ServiceMonitor together.
	if got := asStr(dig(dep.doc, "spec", "selector", "matchLabels", k8sAppLabel)); got != k8sAppName {
		t.Errorf("Deployment selector %s = %q, want %q", k8sAppLabel, got, k8sAppName)
	}
	if got := asStr(dig(dep.doc, "spec", "template", "metadata", "labels", k8sAppLabel)); got != k8sAppName {
		t.Errorf("pod label %s = %q, want %q", k8sAppLabel, got, k8sAppName)
	}

	want := []struct {
		where string
		got   any
		want  any
	}{
		{"pod runAsNonRoot", dig(pod, "securityContext", "runAsNonRoot"), true},
		{"pod runAsUser", dig(pod, "securityContext", "runAsUser"), k8sNobody},
		{"pod seccompProfile", dig(pod, "securityContext", "seccompProfile", "type"), "RuntimeDefault"},
		{"pod automountServiceAccountToken", dig(pod, "automountServiceAccountToken"), false},
		{"container runAsNonRoot", dig(c, "securityContext", "runAsNonRoot"), true},
		{"container runAsUser", dig(c, "securityContext", "runAsUser"), k8sNobody},
		{"container readOnlyRootFilesystem", dig(c, "securityContext", "readOnlyRootFilesystem"), true},
		{"container allowPrivilegeEscalation", dig(c, "securityContext", "allowPrivilegeEscalation"), false},
		{"container capabilities.drop", dig(c, "securityContext", "capabilities", "drop"), []any{"ALL"}},
		{"container seccompProfile", dig(c, "securityContext", "seccompProfile", "type"), "RuntimeDefault"},
		{"liveness probe path", dig(c, "livenessProbe", "httpGet", "path"), "/"},
		{"liveness probe port", dig(c, "livenessProbe", "httpGet", "port"), k8sMetricsPortName},
		{"readiness probe path", dig(c, "readinessProbe", "httpGet", "path"), "/"},
		{"readiness probe port", dig(c, "readinessProbe", "httpGet", "port"), k8sMetricsPortName},
	}
	for _, w := range want {
		if !reflect.DeepEqual(w.got, w.want) {
			t.Errorf("Deployment %s = %#v, want %#v", w.where, w.got, w.want)
		}
	}
	if caps, _ := dig(c, "securityContext", "capabilities", "add").([]any); len(caps) > 0 {
		t.Errorf("Deployment adds capabilities %v", caps)
	}
	if dig(c, "securityContext", "privileged") == true {
		t.Error("Deployment container is privileged")
	}
	for _, r := range []string{"requests.cpu", "requests.memory", "limits.memory"} {
		kind, res, _ := strings.Cut(r, ".")
		if asStr(dig(c, "resources", kind, res)) == "" {
			t.Errorf("Deployment container has no resources.%s", r)
		}
	}
	ports, _ := dig(c, "ports").([]any)
	if len(ports) != 1 || dig(ports[0], "name") != k8sMetricsPortName || dig(ports[0], "containerPort") != k8sExporterPort {
		t.Errorf("Deployment ports = %v, want one named %q on %d", ports, k8sMetricsPortName, k8sExporterPort)
	}
	args := asStrs(dig(c, "args"))
	if !slices.Contains(args, "--config.file="+k8sConfigPath) {
		t.Errorf("Deployment args %v do not point --config.file at %s", args, k8sConfigPath)
	}
	if dig(c, "envFrom") != nil {
		t.Error("Deployment container sets envFrom: the password must come only through password_file")
	}
	env, _ := dig(c, "env").([]any)
	for _, e := range env { // only the Go runtime's memory limit (see BenchmarkExporterMemoryUnderAbuse)
		if dig(e, "name") != "GOMEMLIMIT" || dig(e, "valueFrom") != nil {
			t.Errorf("Deployment container sets env %v: the password must come only through password_file", e)
		}
	}
}

func TestPasswordComesFromSecretThroughPasswordFile(t *testing.T) {
	objs := k8sManifests(t)
	dep := k8sOne(t, objs, "Deployment")
	cm := k8sOne(t, objs, "ConfigMap")
	secret := k8sOne(t, objs, "Secret")
	c := k8sContainer(t, dep)

	// Volumes by name, and where the container mounts them.
	volumes := map[string]any{}
	vs, _ := dig(dep.doc, "spec", "template", "spec", "volumes").([]any)
	for _, v := range vs {
		volumes[asStr(dig(v, "name"))] = v
	}
	var configMount, secretMount map[string]any
	var secretVolume any
	mounts, _ := dig(c, "volumeMounts").([]any)
	for _, m := range mounts {
		m, _ := m.(map[string]any)
		v := volumes[asStr(m["name"])]
		// Only the state volume (--persistence.file) is written.
		if dig(m, "readOnly") != true && dig(v, "persistentVolumeClaim") == nil {
			t.Errorf("volume mount %v is not readOnly", m["name"])
		}
		switch {
		case asStr(dig(v, "configMap", "name")) == cm.name():
			configMount = m
		case asStr(dig(v, "secret", "secretName")) == secret.name():
			secretMount, secretVolume = m, v
		}
	}
	if configMount == nil || secretMount == nil {
		t.Fatalf("Deployment must mount ConfigMap %q and Secret %q (mounts %v)", cm.name(), secret.name(), mounts)
	}

	// The config file lands where --config.file points.
	configFile := asStr(configMount["mountPath"])
	if sub := asStr(configMount["subPath"]); sub != "" {
		if configFile != k8sConfigPath {
			t.Errorf("config mounted at %s, want %s", configFile, k8sConfigPath)
		}
		if dig(cm.doc, "data", sub) == nil {
			t.Errorf("ConfigMap has no key %q (the mount's subPath)", sub)
		}
	} else {
		configFile = filepath.Join(configFile, "config.yml")
	}
	cfgText := asStr(dig(cm.doc, "data", filepath.Base(configFile)))
	if configFile != k8sConfigPath || cfgText == "" {
		t.Fatalf("ConfigMap does not provide %s", k8sConfigPath)
	}

	// password_file names the Secret's file; no password in the ConfigMap.
	var cfgDoc map[string]any
	if err := yaml.Unmarshal([]byte(cfgText), &cfgDoc); err != nil {
		t.Fatalf("ConfigMap config.yml: %v", err)
	}
	if dig(cfgDoc, "explorer", "password") != nil {
		t.Error("ConfigMap config.yml holds a password: use password_file and the Secret")
	}
	passwordFile := asStr(dig(cfgDoc, "explorer", "password_file"))
	key := ""
	items, _ := dig(secretVolume, "secret", "items").([]any)
	for _, it := range items {
		if filepath.Join(asStr(secretMount["mountPath"]), asStr(dig(it, "path"))) == passwordFile {
			key = asStr(dig(it, "key"))
		}
	}
	if len(items) == 0 && filepath.Dir(passwordFile) == filepath.Clean(asStr(secretMount["mountPath"])) {
		key = filepath.Base(passwordFile)
	}
	if key == "" {
		t.Fatalf("password_file %q is not a file of the mounted Secret (mount %v, items %v)", passwordFile, secretMount["mountPath"], items)
	}
	password := asStr(dig(secret.doc, "stringData", key))
	if password == "" {
		t.Fatalf("Secret has no stringData.%s", key)
	}
	// The Secret's files must be readable by the exporter's user/group.
	if mode, ok := dig(secretVolume, "secret", "defaultMode").(int); ok {
		fsGroup := dig(dep.doc, "spec", "template", "spec", "securityContext", "fsGroup")
		if mode&0o004 == 0 && (mode&0o040 == 0 || fsGroup != k8sNobody) {
			t.Errorf("Secret mode %#o with fsGroup %v is unreadable for user %d", mode, fsGroup, k8sNobody)
		}
	}

	// The exporter itself accepts the config, with the Secret as the file.
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte(password), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgDoc["explorer"].(map[string]any)["password_file"] = pw
	data, err := yaml.Marshal(cfgDoc)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(data)
	if err != nil {
		t.Fatalf("the exporter rejects the ConfigMap's config.yml: %v", err)
	}
	if got, err := cfg.Explorer.ReadPassword(); err != nil || got != password {
		t.Errorf("password read through password_file = %q, %v; want the Secret's", got, err)
	}
}

func TestServiceAndServiceMonitorScrapeTheExporter(t *testing.T) {
	objs := k8sManifests(t)
	svc := k8sOne(t, objs, "Service")
	sm := k8sOne(t, objs, "ServiceMonitor")

	if got := asStr(dig(svc.doc, "spec", "selector", k8sAppLabel)); got != k8sAppName {
		t.Errorf("Service selector %s = %q, want %q", k8sAppLabel, got, k8sAppName)
	}
	ports, _ := dig(svc.doc, "spec", "ports").([]any)
	if len(ports) != 1 || dig(ports[0], "name") != k8sMetricsPortName || dig(ports[0], "port") != k8sExporterPort {
		t.Errorf("Service ports = %v, want one named %q on %d", ports, k8sMetricsPortName, k8sExporterPort)
	}
	if got := asStr(dig(svc.doc, "metadata", "labels", k8sAppLabel)); got != k8sAppName {
		t.Errorf("Service label %s = %q: the ServiceMonitor selects on it", k8sAppLabel, got)
	}

	if got := asStr(sm.doc["apiVersion"]); got != "monitoring.coreos.com/v1" {
		t.Errorf("ServiceMonitor apiVersion %q", got)
	}
	if got := asStr(dig(sm.doc, "spec", "selector", "matchLabels", k8sAppLabel)); got != k8sAppName {
		t.Errorf("ServiceMonitor selects %s=%q, want %q", k8sAppLabel, got, k8sAppName)
	}
	eps, _ := dig(sm.doc, "spec", "endpoints").([]any)
	if len(eps) != 1 || dig(eps[0], "port") != k8sMetricsPortName {
		t.Fatalf("ServiceMonitor endpoints = %v, want one on port %q", eps, k8sMetricsPortName)
	}
	// The job label must be the one the alerts and the dashboard expect,
	// as in deploy/prometheus/prometheus.yml.
	jobName := k8sPrometheusJobName(t)
	relabeled := false
	rls, _ := dig(eps[0], "relabelings").([]any)
	for _, r := range rls {
		if dig(r, "targetLabel") == "job" && dig(r, "replacement") == jobName {
			relabeled = true
		}
	}
	if !relabeled {
		t.Errorf("ServiceMonitor does not set job=%q (the job name in %s)", jobName, prometheusYML)
	}
}

// k8sPrometheusJobName is the exporter's scrape job in prometheus.yml: the
// one whose target is port 9064.
func k8sPrometheusJobName(t *testing.T) string {
	t.Helper()
	var cfg prometheusConfig
	readYAML(t, prometheusYML, &cfg)
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				if strings.HasSuffix(target, fmt.Sprintf(":%d", k8sExporterPort)) {
					return sc.JobName
				}
			}
		}
	}
	t.Fatalf("%s has no scrape job for port %d", prometheusYML, k8sExporterPort)
	return ""
}

// get walks nested maps (and lists, by int index) decoded from YAML or
// JSON; nil when a step is missing.
func dig(v any, path ...any) any {
	for _, p := range path {
		switch key := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[key]
		case int:
			l, ok := v.([]any)
			if !ok || key < 0 || key >= len(l) {
				return nil
			}
			v = l[key]
		}
	}
	return v
}

// str is v as a string ("" when it is none).
func asStr(v any) string {
	s, _ := v.(string)
	return s
}

// strs is a list of strings (non-strings skipped).
func asStrs(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, e := range l {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
