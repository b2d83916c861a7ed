// The knobs of the nebula_explorer_exporter mixin. Override any of them:
//
//   (import 'mixin.libsonnet') + { _config+:: { explorerLabel: 'cluster' } }
//
// and compile with `go generate ./deploy/mixin` (or any jsonnet).
{
  _config+:: {
    // Selects the exporter's series: the scrape job of the exporters.
    exporterSelector: 'job="nebula_explorer"',

    // The target label that tells Explorers apart (one exporter per
    // Explorer, labelled in the scrape config). Alerts keep it, Alertmanager
    // groups by it, the dashboard offers it as a variable.
    explorerLabel: 'explorer',

    // Alerts.
    exporterDownFor: '5m',
    // NebulaExplorerDown: no sync with Explorer succeeded in this window,
    // though the exporter tried.
    syncWindow: '10m',
    syncFailingFor: '5m',
    // NebulaExplorerAPIErrors: share of failed requests to Explorer per
    // endpoint over apiErrorsWindow.
    apiErrorsRatio: 0.2,
    apiErrorsWindow: '15m',
    apiErrorsFor: '15m',
    // NebulaExplorerJobFailed fires for this long after each failed job.
    jobFailedWindowSeconds: 15 * 60,
    // NebulaExplorerWorkflowHighFailureRatio: failed / (success + failed)
    // of the jobs that finished in the last hour, with at least this many.
    failureRatio: 0.5,
    failureRatioMinJobs: 3,
    failureRatioFor: '15m',
    // NebulaExplorerWorkflowNoRecentSuccess: no successful job for longer
    // than this, unless noSuccessThresholds says otherwise for a workflow.
    noSuccessThresholdSeconds: 24 * 3600,
    // Per-workflow thresholds in seconds, by workflow name, e.g.
    //   noSuccessThresholds: { weekly_export: 8 * 24 * 3600 },
    // Users of the plain rule files add a rule instead (see the runbook).
    noSuccessThresholds: {},
    // How far back Prometheus looks for the start of a workflow that never
    // succeeded; thresholds longer than this never fire for such workflows.
    neverSucceededLookback: '8d',
    // NebulaExplorerJobStuck: a running job runs longer than stuckFactor x
    // the workflow's p95 successful run time, and at least stuckMinSeconds.
    stuckFactor: 3,
    stuckMinSeconds: 3600,
    stuckFor: '5m',
    // ... or the same job has been stopping for stoppingFor.
    stoppingFor: '15m',
    // NebulaExplorerJobsQueued: the oldest preparing job waits this long.
    queuedMaxAgeSeconds: 30 * 60,
    queuedFor: '5m',

    // Severities: critical pages, warning goes to a queue (see
    // deploy/alertmanager/alertmanager.yml).
    severities: {
      exporterDown: 'warning',
      explorerDown: 'critical',
      apiErrors: 'warning',
      jobFailed: 'critical',
      failureRatio: 'warning',
      noRecentSuccess: 'critical',
      jobStuck: 'warning',
      jobsQueued: 'warning',
    },

    runbookURL: 'https://github.com/nebula-contrib/nebula_explorer_exporter/blob/main/deploy/RUNBOOK.md',

    // Dashboard.
    dashboardUID: 'nebula-explorer',
    dashboardTitle: 'NebulaGraph Explorer workflows',
    dashboardRefresh: '30s',
    dashboardTimeFrom: 'now-6h',
  },
}
