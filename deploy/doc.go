// Package deploy is the monitoring and deployment kit of the exporter: the
// Prometheus configuration and rules, Alertmanager, the Grafana dashboard,
// the container image, docker-compose and Kubernetes manifests, and the demo
// (see README, "Monitoring kit"). It has no code of its own: its tests check
// the kit with the real tools (promtool, amtool, yamllint, shellcheck,
// podman) and run it end to end against a real Prometheus 3.
package deploy
