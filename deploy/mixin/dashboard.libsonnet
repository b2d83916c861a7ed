// TODO(h5-kit): the dashboard as jsonnet; until then the hand-written one.
{ grafanaDashboards+:: { 'nebula-explorer.json': import 'old-dashboard.json' } }
