// Alerts. Each has severity, summary, description and a runbook anchor
// (the alert name in lower case). None reads a counter with increase():
// the job counters drop when an exporter without persistence restarts
// after Explorer purged jobs, and no alert may fire on that.
{
  prometheusAlerts+:: {
    local c = $._config,
    local sel = c.exporterSelector,
    local lbl = c.explorerLabel,
    local alert(name, severity, expr, summary, description, extra={}) = {
      alert: name,
      expr: expr,
      labels: { severity: c.severities[severity] },
      annotations: {
        summary: summary,
        description: description,
        runbook_url: '%s#%s' % [c.runbookURL, std.asciiLower(name)],
      },
    } + extra,
    // "on <instance> (Explorer <explorer>)", for descriptions.
    local where = '{{ $labels.instance }}{{ with $labels.%s }} (Explorer {{ . }}){{ end }}' % lbl,

    groups+: [
      {
        name: 'nebula_explorer_exporter',
        rules: [
          alert(
            'NebulaExplorerExporterDown', 'exporterDown',
            // absent(): no target at all (removed from the config, lost by
            // service discovery) silences every other alert here too.
            |||
              up{%(sel)s} == 0
              or
              absent(up{%(sel)s})
            ||| % { sel: sel },
            'Prometheus cannot scrape the NebulaGraph Explorer exporter',
            |||
              {{ if $labels.instance }}Prometheus has failed to scrape the exporter
              %(where)s for %(for)s.
              {{- else }}Prometheus has had no exporter target for %(for)s.{{ end }}
              Nothing about the Explorer workflows it watches is being monitored.
            ||| % { where: where, 'for': c.exporterDownFor },
            { 'for': c.exporterDownFor },
          ),
          alert(
            'NebulaExplorerDown', 'explorerDown',
            // The exporter tried to sync and none of its syncs succeeded.
            |||
              sum without (kind, result) (
                increase(nebula_explorer_syncs_total{%(sel)s, result="failure"}[%(window)s])
              ) > 0
              unless
              sum without (kind, result) (
                increase(nebula_explorer_syncs_total{%(sel)s, result="success"}[%(window)s])
              ) > 0
            ||| % { sel: sel, window: c.syncWindow },
            'The exporter cannot sync with NebulaGraph Explorer',
            |||
              No sync of the exporter %(where)s with Explorer has succeeded for
              %(window)s ({{ printf "%%.0f" $value }} failed): Explorer is down, unreachable,
              refuses the login or answers with errors. The job metrics are
              frozen at their last synced values; the workflow alerts of this
              exporter are inhibited.
            ||| % { where: where, window: c.syncWindow },
            { 'for': c.syncFailingFor },
          ),
          alert(
            'NebulaExplorerAPIErrors', 'apiErrors',
            |||
              sum without (result) (
                rate(nebula_explorer_api_requests_total{%(sel)s, result!="success"}[%(window)s])
              )
                /
              sum without (result) (rate(nebula_explorer_api_requests_total{%(sel)s}[%(window)s]))
              > %(ratio)g
            ||| % { sel: sel, window: c.apiErrorsWindow, ratio: c.apiErrorsRatio },
            'Requests of the exporter to Explorer fail',
            |||
              {{ $value | humanizePercentage }} of the exporter's {{ $labels.endpoint }}
              requests to Explorer failed over the last %(window)s on %(where)s
              (threshold %(ratio)g%%). Syncs may still succeed after retries, but
              slowly; nebula_explorer_api_requests_total says which errors.
            ||| % { where: where, window: c.apiErrorsWindow, ratio: c.apiErrorsRatio * 100 },
            { 'for': c.apiErrorsFor, keep_firing_for: '5m' },
          ),
        ],
      },
      {
        name: 'nebula_explorer_workflows',
        rules: [
          alert(
            'NebulaExplorerJobFailed', 'jobFailed',
            // The latest failed job of the workflow ended in the last
            // window. Its id is a label, so each new failure is a new alert
            // that Alertmanager notifies within its group interval, even
            // while the previous failure's alert still fires. Interrupted
            // jobs (cancelled by an operator) never alert.
            |||
              nebula_explorer_workflow_last_job_id{%(sel)s, status="failed"}
              and
              time() - nebula_explorer_workflow_last_finish_timestamp_seconds{%(sel)s, status="failed"} < %(window)d
            ||| % { sel: sel, window: c.jobFailedWindowSeconds },
            'Job {{ printf "%.0f" $value }} of workflow {{ $labels.workflow }} failed',
            |||
              Job {{ printf "%%.0f" $value }} of workflow {{ $labels.workflow }}
              (id {{ $labels.workflow_id }}) failed on %(where)s.
            ||| % { where: where },
            { labels+: { job_id: '{{ printf "%.0f" $value }}' } },
          ),
          alert(
            'NebulaExplorerWorkflowHighFailureRatio', 'failureRatio',
            |||
              workflow:nebula_explorer_jobs_failed_per_completed:ratio_rise1h > %(ratio)g
              and
              sum without (status) (
                workflow_status:nebula_explorer_jobs_finished:rise1h{status=~"success|failed"}
              ) >= %(min)d
            ||| % { ratio: c.failureRatio, min: c.failureRatioMinJobs },
            'Most jobs of workflow {{ $labels.workflow }} fail',
            |||
              {{ $value | humanizePercentage }} of the jobs of workflow
              {{ $labels.workflow }} (id {{ $labels.workflow_id }}) on %(where)s that
              succeeded or failed in the last hour failed (threshold %(ratio)g%%, at
              least %(min)d jobs; interrupted jobs do not count).
            ||| % { where: where, ratio: c.failureRatio * 100, min: c.failureRatioMinJobs },
            { 'for': c.failureRatioFor },
          ),
          alert(
            'NebulaExplorerWorkflowNoRecentSuccess', 'noRecentSuccess',
            // Time since the last success or, for a workflow that has
            // finished jobs but never succeeded, since Prometheus first saw
            // it so (within neverSucceededLookback). Workflows that never
            // finished a job are not alerted on.
            |||
              (
                time()
                  - max without (status) (nebula_explorer_workflow_last_finish_timestamp_seconds{%(sel)s, status="success"})
                or
                time() - min_over_time(workflow:nebula_explorer_workflow_without_success:timestamp[%(lookback)s])
              )
              > workflow:nebula_explorer_no_success_threshold_seconds:effective
            ||| % { sel: sel, lookback: c.neverSucceededLookback },
            'Workflow {{ $labels.workflow }} has not succeeded for too long',
            |||
              Workflow {{ $labels.workflow }} (id {{ $labels.workflow_id }}) on
              %(where)s has had no successful job for {{ $value | humanizeDuration }},
              longer than its threshold.
            ||| % { where: where },
          ),
          alert(
            'NebulaExplorerJobStuck', 'jobStuck',
            // A running job: the workflow's usual run time is the p95 of its
            // successful runs Explorer lists; a workflow without one gets
            // the minimum.
            |||
              time() - nebula_explorer_workflow_oldest_running_start_timestamp_seconds{%(sel)s}
              >
              (
                clamp_min(
                  %(factor)g * (
                    histogram_quantile(0.95,
                      sum without (status) (nebula_explorer_job_run_duration_seconds_bucket{%(sel)s, status="success"})
                    ) >= 0
                  ),
                  %(min)d
                )
                or
                %(min)d * group without (status) (nebula_explorer_jobs{%(sel)s})
              )
            ||| % { sel: sel, factor: c.stuckFactor, min: c.stuckMinSeconds },
            'A job of workflow {{ $labels.workflow }} has been running far longer than usual',
            |||
              The oldest running job of workflow {{ $labels.workflow }} (id
              {{ $labels.workflow_id }}) on %(where)s
              started {{ $value | humanizeDuration }} ago, more than %(factor)g times the workflow's usual run time (and at
              least {{ %(min)d | humanizeDuration }}).
            ||| % { where: where, factor: c.stuckFactor, min: c.stuckMinSeconds },
            { 'for': c.stuckFor, labels+: { status: 'running' } },
          ),
          alert(
            'NebulaExplorerJobStuck', 'jobStuck',
            // A stopping job: the same job (its createTime) has been the
            // oldest stopping one for stoppingFor; jobs that pass through
            // stopping quickly change the value and never fire.
            |||
              nebula_explorer_workflow_oldest_unfinished_create_timestamp_seconds{%(sel)s, status="stopping"}
              unless
              changes(
                nebula_explorer_workflow_oldest_unfinished_create_timestamp_seconds{%(sel)s, status="stopping"}[%(for)s]
              ) > 0
            ||| % { sel: sel, 'for': c.stoppingFor },
            'A job of workflow {{ $labels.workflow }} does not finish stopping',
            |||
              A job of workflow {{ $labels.workflow }} (id {{ $labels.workflow_id }})
              on %(where)s, created {{ $value | humanizeTimestamp }}, has been
              stopping for more than %(for)s.
            ||| % { where: where, 'for': c.stoppingFor },
            { 'for': c.stoppingFor },
          ),
          alert(
            'NebulaExplorerJobsQueued', 'jobsQueued',
            // The age of the oldest preparing job, not how many there are:
            // a busy queue that flows never fires.
            |||
              time()
                - nebula_explorer_workflow_oldest_unfinished_create_timestamp_seconds{%(sel)s, status="preparing"}
              > %(age)d
            ||| % { sel: sel, age: c.queuedMaxAgeSeconds },
            'A job of workflow {{ $labels.workflow }} has been waiting to start for too long',
            |||
              The oldest preparing job of workflow {{ $labels.workflow }} (id
              {{ $labels.workflow_id }}) on %(where)s was created
              {{ $value | humanizeDuration }} ago and has not started (threshold
              {{ %(age)d | humanizeDuration }}).
            ||| % { where: where, age: c.queuedMaxAgeSeconds },
            { 'for': c.queuedFor },
          ),
        ],
      },
    ],
  },
}
