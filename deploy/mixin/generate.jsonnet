// The files under deploy/ that are compiled from the mixin, by path
// relative to deploy/. `go generate ./deploy/mixin` writes them; a test
// holds the committed files equal to this.
local mixin = import 'mixin.libsonnet';

local header(from) = |||
  # Code generated from deploy/mixin (%s). DO NOT EDIT.
  # Regenerate: go generate ./deploy/mixin
||| % from;
local yaml(v) = std.manifestYamlDoc(v, indent_array_in_object=true, quote_keys=false) + '\n';

// A test-only mixin: the per-workflow threshold of the promtool test
// "the per-workflow override fires".
local withOverride = mixin { _config+:: { noSuccessThresholds: { slow_export: 2 * 24 * 3600 } } };

{
  'prometheus/recording_rules.yml': header('rules.libsonnet') + yaml(mixin.prometheusRules),
  'prometheus/alerting_rules.yml': header('alerts.libsonnet') + yaml(mixin.prometheusAlerts),
  'prometheus/testdata/override_rules.yml': header('rules.libsonnet with noSuccessThresholds') + yaml({
    groups: [g for g in withOverride.prometheusRules.groups if g.name == 'nebula_explorer_no_success_thresholds'],
  }),
  'kubernetes/prometheusrule.yaml':
    header('mixin.libsonnet') + |||
      # The prometheus-operator loads this PrometheusRule when your Prometheus
      # resource's ruleSelector matches its labels (kube-prometheus-stack: add
      # the label "release: <helm release name>"). The rules expect the scrape
      # job "nebula_explorer" (servicemonitor.yaml sets it).
    ||| + yaml({
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PrometheusRule',
      metadata: {
        name: 'nebula-explorer-exporter',
        labels: { 'app.kubernetes.io/name': 'nebula-explorer-exporter' },
      },
      spec: { groups: mixin.prometheusRules.groups + mixin.prometheusAlerts.groups },
    }),
} + {
  ['grafana/dashboards/' + name]: std.manifestJsonEx(mixin.grafanaDashboards[name], '  ') + '\n'
  for name in std.objectFields(mixin.grafanaDashboards)
}
