// Recording rules: level:metric:operations. "workflow:" series keep every
// label of the exporter's series except `status` (so job, instance, the
// Explorer label and workflow, workflow_id stay); "workflow_status:" series
// keep `status` too. Each rule is used by an alert or the dashboard.
//
// rise<window>: how much a counter grew in the window, as `x -
// min_over_time(x[window])`. Unlike increase(), it never counts a drop as
// growth: the exporter's job counters describe the history Explorer lists,
// so they drop when an exporter without persistence restarts after Explorer
// purged jobs, and increase() would read that drop as a reset and count the
// whole remaining history as new jobs. rise counts what came after the drop.
{
  prometheusRules+:: {
    local c = $._config,
    local sel = c.exporterSelector,
    local rise(window) = {
      record: 'workflow_status:nebula_explorer_jobs_finished:rise%s' % window,
      expr: |||
        nebula_explorer_jobs_finished_total{%(sel)s}
          - min_over_time(nebula_explorer_jobs_finished_total{%(sel)s}[%(window)s])
      ||| % { sel: sel, window: window },
    },
    // failed / (success + failed): interrupted jobs are operators' cancels,
    // not failures. Absent (not NaN) when no job completed in the window.
    local ratio(window) = {
      record: 'workflow:nebula_explorer_jobs_failed_per_completed:ratio_rise%s' % window,
      expr: |||
        sum without (status) (workflow_status:nebula_explorer_jobs_finished:rise%(window)s{status="failed"})
          /
        (
          sum without (status) (workflow_status:nebula_explorer_jobs_finished:rise%(window)s{status=~"success|failed"})
          > 0
        )
      ||| % { window: window },
    },
    local quantile(metric, q) = {
      record: 'workflow:nebula_explorer_%s_seconds:p%d_rate1d' % [metric, q * 100],
      expr: |||
        histogram_quantile(%(q)g,
          sum without (status) (rate(nebula_explorer_%(metric)s_seconds_bucket{%(sel)s}[1d]))
        ) >= 0
      ||| % { q: q, metric: metric, sel: sel },
    },

    groups+: [
      {
        name: 'nebula_explorer_jobs',
        rules: [
          // For NebulaExplorerWorkflowHighFailureRatio.
          rise('1h'),
          ratio('1h'),
          // For NebulaExplorerWorkflowNoRecentSuccess: the evaluation time,
          // recorded while a workflow has finished jobs but never a
          // successful one; min_over_time of it is when that began.
          {
            record: 'workflow:nebula_explorer_workflow_without_success:timestamp',
            expr: |||
              timestamp(
                group without (status) (nebula_explorer_workflow_last_finish_timestamp_seconds{%(sel)s})
                  unless ignoring (status)
                nebula_explorer_workflow_last_finish_timestamp_seconds{%(sel)s, status="success"}
              )
            ||| % { sel: sel },
          },
          // The no-success threshold of every workflow the exporter reports:
          // its override if one exists, else the default.
          {
            record: 'workflow:nebula_explorer_no_success_threshold_seconds:effective',
            expr: |||
              group without (status) (nebula_explorer_jobs{%(sel)s})
                * on (workflow) group_left ()
              max by (workflow) (workflow:nebula_explorer_no_success_threshold_seconds:override)
              or
              %(default)d * group without (status) (nebula_explorer_jobs{%(sel)s})
            ||| % { sel: sel, default: c.noSuccessThresholdSeconds },
          },
        ],
      },
      {
        // Day-long windows change slowly: every 5 minutes is enough.
        name: 'nebula_explorer_jobs_1d',
        interval: '5m',
        rules: [
          rise('1d'),
          ratio('1d'),
          quantile('job_run_duration', 0.5),
          quantile('job_run_duration', 0.95),
          quantile('job_run_duration', 0.99),
          quantile('job_queue_duration', 0.5),
          quantile('job_queue_duration', 0.95),
        ],
      },
    ] + (
      // Per-workflow thresholds of _config.noSuccessThresholds.
      if std.length(c.noSuccessThresholds) == 0 then [] else [{
        name: 'nebula_explorer_no_success_thresholds',
        rules: [
          {
            record: 'workflow:nebula_explorer_no_success_threshold_seconds:override',
            expr: 'vector(%d)' % c.noSuccessThresholds[w],
            labels: { workflow: w },
          }
          for w in std.objectFields(c.noSuccessThresholds)
        ],
      }]
    ),
  },
}
