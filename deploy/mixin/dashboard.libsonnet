// The Grafana dashboard, written in plain jsonnet: no grafonnet (it cannot
// be fetched here), a few helpers instead, and the same _config as the
// rules, so a user's job selector and Explorer label reach every query.
{
  grafanaDashboards+:: {
    local c = $._config,
    local lbl = c.explorerLabel,
    local ds = { type: 'prometheus', uid: '${datasource}' },
    // Selectors: the exporter's series of the chosen Explorers and
    // exporters, and of the chosen workflows.
    local exporter = '%s, %s=~"$%s", instance=~"$instance"' % [c.exporterSelector, lbl, lbl],
    local wf = exporter + ', workflow=~"$workflow"',

    local target(expr, legend='', refId='A', instant=false, format='time_series', exemplar=false) = {
      datasource: ds,
      expr: expr,
      legendFormat: legend,
      refId: refId,
      instant: instant,
      range: !instant,
      format: format,
      exemplar: exemplar,
    },
    local refIds = 'ABCDEFGHIJ',
    local targets(list) = [list[i] { refId: refIds[i] } for i in std.range(0, std.length(list) - 1)],
    local panel(type, title, description, list, w, h, unit='', extra={}) = {
      type: type,
      title: title,
      description: std.stripChars(std.strReplace(description, '\n', ' '), ' '),
      datasource: ds,
      targets: targets(list),
      gridPos: { w: w, h: h },
      fieldConfig: { defaults: { unit: unit }, overrides: [] },
    } + extra,
    local timeseries(title, description, list, unit, w=12, h=8, extra={}) =
      panel('timeseries', title, description, list, w, h, unit, {
        options: { legend: { displayMode: 'table', placement: 'right', calcs: ['lastNotNull'] }, tooltip: { mode: 'multi', sort: 'desc' } },
      } + extra),
    local stat(title, description, list, unit, mappings=[], w=4, h=4) =
      panel('stat', title, description, list, w, h, unit, {
        fieldConfig: { defaults: { unit: unit, mappings: mappings }, overrides: [] },
        options: { colorMode: 'background', graphMode: 'none', reduceOptions: { calcs: ['lastNotNull'] } },
      }),
    local heatmap(title, description, metric) =
      panel('heatmap', title, description, [
        target('sum by (le) (increase(%s_bucket{%s}[$__rate_interval]))' % [metric, wf], '{{le}}', format='heatmap', exemplar=true),
      ], 12, 8, 's', {
        options: {
          calculate: false,
          yAxis: { unit: 's' },
          cellValues: { unit: 'short' },
          exemplars: { color: 'rgba(255,0,255,0.7)' },
          tooltip: { show: true, yHistogram: true },
        },
      }),
    local row(title) = { type: 'row', title: title, collapsed: false, panels: [], gridPos: { w: 24, h: 1 } },
    local valueText(map) = [{ type: 'value', options: { [k]: map[k] for k in std.objectFields(map) } }],
    local upDown = valueText({ '0': { text: 'down', color: 'red' }, '1': { text: 'up', color: 'green' } }),
    local none = valueText({ '0': { text: '-' } }),
    local override(name, props) = { matcher: { id: 'byName', options: name }, properties: props },

    // Panels in reading order; gridPos x/y and ids are filled in below.
    local panels = [
      row('Status: which workflows are red, since when, which job'),
      panel('table', 'Workflows', |||
        One line per workflow: the status of its latest finished job, how long
        ago its last success ended, that job's id, failed / (success + failed)
        of the last 24 hours, and how long the oldest waiting (preparing) and
        running jobs have been at it ("-": none), and the workflow's
        NebulaExplorerWorkflowNoRecentSuccess threshold.
      |||, [
        target('nebula_explorer_workflow_last_job_status{%s} == 1' % wf, instant=true, format='table'),
        target('time() - max without (status) (nebula_explorer_workflow_last_finish_timestamp_seconds{%s, status="success"})' % wf, instant=true, format='table'),
        target(|||
          max without (status) (
            nebula_explorer_workflow_last_job_id{%s}
            and
            nebula_explorer_workflow_last_job_status{%s} == 1
          )
        ||| % [wf, wf], instant=true, format='table'),
        target('workflow:nebula_explorer_jobs_failed_per_completed:ratio_rise1d{%s}' % wf, instant=true, format='table'),
        target(|||
          time() - nebula_explorer_workflow_oldest_unfinished_create_timestamp_seconds{%s, status="preparing"}
          or
          0 * group without (status) (nebula_explorer_jobs{%s})
        ||| % [wf, wf], instant=true, format='table'),
        target(|||
          time() - nebula_explorer_workflow_oldest_running_start_timestamp_seconds{%s}
          or
          0 * group without (status) (nebula_explorer_jobs{%s})
        ||| % [wf, wf], instant=true, format='table'),
        target('workflow:nebula_explorer_no_success_threshold_seconds:effective{%s}' % wf, instant=true, format='table'),
      ], 24, 9, extra={
        transformations: [
          { id: 'merge', options: {} },
          {
            id: 'organize',
            options: {
              excludeByName: { Time: true, job: true, 'Value #A': true, __name__: true },
              renameByName: {
                status: 'last job',
                'Value #B': 'since last success',
                'Value #C': 'last job id',
                'Value #D': 'failed 24h',
                'Value #E': 'oldest preparing',
                'Value #F': 'oldest running',
                'Value #G': 'success due every',
              },
              indexByName: { [lbl]: 0, instance: 1, workflow: 2, workflow_id: 3, status: 4, 'Value #B': 5, 'Value #C': 6, 'Value #D': 7, 'Value #E': 8, 'Value #F': 9, 'Value #G': 10 },
            },
          },
        ],
        options: { showHeader: true, sortBy: [{ displayName: 'last job', desc: false }] },
        fieldConfig: {
          defaults: {},
          overrides: [
            override('last job', [
              { id: 'mappings', value: valueText({
                success: { text: 'success', color: 'green', index: 0 },
                failed: { text: 'failed', color: 'red', index: 1 },
                interrupted: { text: 'interrupted', color: 'orange', index: 2 },
              }) },
              { id: 'custom.cellOptions', value: { type: 'color-background' } },
            ]),
            override('since last success', [{ id: 'unit', value: 's' }]),
            override('success due every', [{ id: 'unit', value: 's' }]),
            override('last job id', [{ id: 'unit', value: 'none' }, { id: 'decimals', value: 0 }]),
            override('failed 24h', [
              { id: 'unit', value: 'percentunit' },
              { id: 'thresholds', value: { mode: 'absolute', steps: [{ color: 'green', value: null }, { color: 'orange', value: 0.01 }, { color: 'red', value: c.failureRatio }] } },
              { id: 'custom.cellOptions', value: { type: 'color-text' } },
            ]),
            override('oldest preparing', [{ id: 'unit', value: 's' }, { id: 'mappings', value: none }]),
            override('oldest running', [{ id: 'unit', value: 's' }, { id: 'mappings', value: none }]),
          ],
        },
      }),

      row('Jobs'),
      timeseries('Jobs by status now', 'Jobs Explorer lists in each status now (not history).', [
        target('sum by (status) (nebula_explorer_jobs{%s})' % wf, '{{status}}'),
      ], 'short', w=8),
      timeseries('Jobs created and finished', 'Jobs created, and jobs finished by status, per minute.', [
        target('sum by (workflow) (rate(nebula_explorer_jobs_created_total{%s}[$__rate_interval])) * 60' % wf, 'created {{workflow}}'),
        target('sum by (status) (rate(nebula_explorer_jobs_finished_total{%s}[$__rate_interval])) * 60' % wf, 'finished {{status}}'),
      ], 'opm', w=8),
      timeseries('Failed jobs (24h)', 'failed / (success + failed) of the jobs that finished in the last 24 hours; interrupted jobs do not count. Absent while none finished.', [
        target('workflow:nebula_explorer_jobs_failed_per_completed:ratio_rise1d{%s}' % wf, '{{workflow}}'),
      ], 'percentunit', w=8, extra={ fieldConfig: { defaults: { unit: 'percentunit', min: 0, max: 1 }, overrides: [] } }),

      row('Run time and queue time'),
      timeseries('Run time (1 day)', 'p50, p95 and p99 of the run time of the jobs that finished in the last day: a window that suits hourly and daily workflows (recording rules, every 5 minutes).', [
        target('workflow:nebula_explorer_job_run_duration_seconds:p50_rate1d{%s}' % wf, 'p50 {{workflow}}'),
        target('workflow:nebula_explorer_job_run_duration_seconds:p95_rate1d{%s}' % wf, 'p95 {{workflow}}'),
        target('workflow:nebula_explorer_job_run_duration_seconds:p99_rate1d{%s}' % wf, 'p99 {{workflow}}'),
      ], 's'),
      heatmap('Run time of finished jobs', 'Jobs finishing per run-time bucket; the dots are exemplars: hover for the job id of the latest job in that bucket.', 'nebula_explorer_job_run_duration_seconds'),
      timeseries('Queue time (1 day)', 'p50 and p95 of how long the jobs that started in the last day waited (createTime to runBeginTime).', [
        target('workflow:nebula_explorer_job_queue_duration_seconds:p50_rate1d{%s}' % wf, 'p50 {{workflow}}'),
        target('workflow:nebula_explorer_job_queue_duration_seconds:p95_rate1d{%s}' % wf, 'p95 {{workflow}}'),
      ], 's'),
      heatmap('Queue time of started jobs', 'Jobs starting per queue-time bucket, with exemplars (job ids).', 'nebula_explorer_job_queue_duration_seconds'),
      timeseries('Run time of the latest job', 'Run time of each workflow\'s latest finished job.', [
        target('nebula_explorer_workflow_last_job_run_duration_seconds{%s}' % wf, '{{workflow}}'),
      ], 's'),
      timeseries('Age of unfinished jobs', 'How long the oldest job in each unfinished status has existed (since createTime), and the oldest running job has run.', [
        target('time() - nebula_explorer_workflow_oldest_unfinished_create_timestamp_seconds{%s}' % wf, '{{workflow}} oldest {{status}}'),
        target('time() - nebula_explorer_workflow_oldest_running_start_timestamp_seconds{%s}' % wf, '{{workflow}} running for'),
      ], 's'),

      row('Tasks'),
      panel('table', 'Slowest tasks (p95 over the time range)', 'p95 run time of each task of the workflows over the dashboard\'s time range, slowest first.', [
        target(|||
          sort_desc(
            histogram_quantile(0.95, sum by (workflow, task, le) (increase(nebula_explorer_task_run_duration_seconds_bucket{%s}[$__range])))
            >= 0
          )
        ||| % wf, instant=true, format='table'),
      ], 12, 9, 's', {
        transformations: [{ id: 'organize', options: { excludeByName: { Time: true }, renameByName: { Value: 'p95 run time' } } }],
      }),
      panel('table', 'Failing tasks (over the time range)', 'Tasks of finished jobs that ended failed over the dashboard\'s time range, most first, with their share of the task\'s finished runs.', [
        target('sort_desc(sum by (workflow, task) (increase(nebula_explorer_tasks_finished_total{%s, status="failed"}[$__range])))' % wf, instant=true, format='table'),
        target(|||
          sum by (workflow, task) (increase(nebula_explorer_tasks_finished_total{%s, status="failed"}[$__range]))
            /
          (sum by (workflow, task) (increase(nebula_explorer_tasks_finished_total{%s}[$__range])) > 0)
        ||| % [wf, wf], instant=true, format='table'),
      ], 12, 9, '', {
        transformations: [
          { id: 'merge', options: {} },
          { id: 'organize', options: { excludeByName: { Time: true }, renameByName: { 'Value #A': 'failed', 'Value #B': 'failed share' } } },
        ],
        fieldConfig: {
          defaults: {},
          overrides: [
            override('failed', [{ id: 'decimals', value: 0 }]),
            override('failed share', [{ id: 'unit', value: 'percentunit' }]),
          ],
        },
      }),

      row('Exporter health'),
      stat('Scraped', 'Whether Prometheus scrapes the exporter (up).', [
        target('up{%s}' % exporter, '{{instance}}'),
      ], 'none', upDown),
      stat('Synced', 'Whether the exporter\'s last sync with Explorer succeeded (nebula_explorer_up).', [
        target('nebula_explorer_up{%s}' % exporter, '{{instance}}'),
      ], 'none', upDown),
      stat('Since last good sync', 'Time since the last successful sync with Explorer.', [
        target('time() - nebula_explorer_last_sync_success_timestamp_seconds{%s}' % exporter, '{{instance}}'),
      ], 's'),
      stat('Configuration', 'Whether the last (re)load of the exporter\'s configuration succeeded.', [
        target('nebula_explorer_config_last_reload_successful{%s}' % exporter, '{{instance}}'),
      ], 'none', valueText({ '0': { text: 'reload failed', color: 'red' }, '1': { text: 'ok', color: 'green' } })),
      stat('Workflows exported', 'Workflows the exporter exports now, after its filters.', [
        target('nebula_explorer_workflows{%s}' % exporter, '{{instance}}'),
      ], 'none'),
      stat('Version', 'The exporter\'s build.', [
        target('nebula_explorer_exporter_build_info{%s}' % exporter, '{{version}}'),
      ], 'none', [], w=4),
      timeseries('Syncs', 'Syncs with Explorer per minute, by kind and result.', [
        target('sum by (kind, result) (rate(nebula_explorer_syncs_total{%s}[$__rate_interval])) * 60' % exporter, '{{kind}} {{result}}'),
      ], 'opm', w=8),
      timeseries('API requests', 'Requests to Explorer per minute, by endpoint and result (an Explorer error name, http_<status>, network, timeout, invalid_answer).', [
        target('sum by (endpoint, result) (rate(nebula_explorer_api_requests_total{%s}[$__rate_interval])) * 60' % exporter, '{{endpoint}} {{result}}'),
      ], 'opm', w=8),
      timeseries('Sync duration and API latency', 'How long the last sync took, and the p95 latency of requests to Explorer by endpoint.', [
        target('nebula_explorer_sync_duration_seconds{%s}' % exporter, 'sync {{instance}}'),
        // >= 0: no NaN for an endpoint without requests in the window.
        target(|||
          histogram_quantile(0.95,
            sum by (endpoint, le) (rate(nebula_explorer_api_request_duration_seconds_bucket{%s}[$__rate_interval]))
          ) >= 0
        ||| % exporter, 'p95 {{endpoint}}'),
      ], 's', w=8),
    ],

    // Lay the panels out left to right, wrapping at 24 columns; rows start
    // a new line.
    local layout(ps) = std.foldl(function(acc, p)
      local w = p.gridPos.w;
      local newLine = p.type == 'row' || acc.x + w > 24;
      local x = if newLine then 0 else acc.x;
      local y = if newLine then acc.y + acc.h else acc.y;
      {
        x: x + w,
        y: y,
        h: if newLine then p.gridPos.h else std.max(acc.h, p.gridPos.h),
        out: acc.out + [p { id: std.length(acc.out) + 1, gridPos+: { x: x, y: y } }],
      }, ps, { x: 0, y: 0, h: 0, out: [] }).out,

    local variable(name, label, query) = {
      name: name,
      label: label,
      type: 'query',
      datasource: ds,
      query: { query: query, refId: 'PrometheusVariableQueryEditor-VariableQuery' },
      definition: query,
      refresh: 2,
      sort: 1,
      multi: true,
      includeAll: true,
      allValue: '.*',
      current: { selected: true, text: ['All'], value: ['$__all'] },
    },

    'nebula-explorer.json': {
      uid: c.dashboardUID,
      title: c.dashboardTitle,
      id: null,
      tags: ['nebula-explorer'],
      timezone: '',
      editable: true,
      graphTooltip: 1,
      refresh: c.dashboardRefresh,
      schemaVersion: 39,
      time: { from: c.dashboardTimeFrom, to: 'now' },
      annotations: {
        list: [
          {
            builtIn: 1,
            datasource: { type: 'grafana', uid: '-- Grafana --' },
            enable: true,
            hide: true,
            iconColor: 'rgba(0, 211, 255, 1)',
            name: 'Annotations & Alerts',
            type: 'dashboard',
          },
          {
            name: 'Alerts',
            datasource: ds,
            enable: true,
            iconColor: 'red',
            expr: 'ALERTS{alertname=~"NebulaExplorer.+", alertstate="firing", %s=~"$%s"}' % [lbl, lbl],
            step: '1m',
            titleFormat: '{{alertname}}',
            textFormat: '{{workflow}} {{job_id}} {{severity}}',
            tagKeys: 'alertname,severity,workflow',
            useValueForTime: false,
          },
        ],
      },
      templating: {
        list: [
          {
            name: 'datasource',
            label: 'Data source',
            type: 'datasource',
            query: 'prometheus',
            current: {},
          },
          variable(lbl, 'Explorer', 'label_values(nebula_explorer_up{%s}, %s)' % [c.exporterSelector, lbl]),
          variable('instance', 'Exporter', 'label_values(nebula_explorer_up{%s, %s=~"$%s"}, instance)' % [c.exporterSelector, lbl, lbl]),
          variable('workflow', 'Workflow', 'label_values(nebula_explorer_jobs{%s}, workflow)' % exporter),
        ],
      },
      panels: layout(panels),
    },
  },
}
