// Command nebula_explorer_exporter exports the workflow jobs of NebulaGraph
// Explorer as Prometheus metrics. This file is wiring only: flags, logger,
// config (and its reload), HTTP server.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"reflect"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"
	sloggokit "github.com/tjhop/slog-gokit"

	"github.com/nebula-contrib/nebula_explorer_exporter/collector"
	"github.com/nebula-contrib/nebula_explorer_exporter/internal/config"
	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
)

const name = "nebula_explorer_exporter"

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	app := kingpin.New(name, "Prometheus exporter for the workflow jobs of NebulaGraph Explorer.")
	var (
		configFile   = app.Flag("config.file", "Path of the configuration file.").Default("config.yml").String()
		configCheck  = app.Flag("config.check", "Validate the configuration file and exit.").Bool()
		metricsPath  = app.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").String()
		logLevel     = app.Flag("log.level", "Only log messages with the given severity or above.").Default("info").Enum("debug", "info", "warn", "error")
		logFormat    = app.Flag("log.format", "Output format of log messages.").Default("logfmt").Enum("logfmt", "json")
		persistFile  = app.Flag("persistence.file", "File that keeps the synced state across restarts (empty: off).").Default("").String()
		persistEvery = app.Flag("persistence.interval", "How often, at most, the state is written to --persistence.file.").Default("1m").Duration()
		maxConns     = app.Flag("web.max-connections", "Maximum number of open HTTP connections (at most half the file descriptor limit); beyond it the one idle longest is closed.").Default("512").Int()
		webFlags     = kingpinflag.AddFlags(app, ":9064")
	)
	app.Version(version.Print(name))
	app.HelpFlag.Short('h')
	if _, err := app.Parse(args); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 2
	}
	switch {
	case *persistEvery <= 0:
		fmt.Fprintf(os.Stderr, "%s: --persistence.interval must be greater than 0, got %s\n", name, *persistEvery)
		return 2
	case *maxConns < 1:
		fmt.Fprintf(os.Stderr, "%s: --web.max-connections must be at least 1, got %d\n", name, *maxConns)
		return 2
	}
	logger, slogger := newLoggers(*logLevel, *logFormat)

	ex := newExporter(*configFile, persistence{file: *persistFile, interval: *persistEvery}, logger)
	if err := ex.reload(); err != nil {
		level.Error(logger).Log("msg", "invalid configuration", "err", err)
		return 1
	}
	if *configCheck {
		level.Info(logger).Log("msg", "configuration is valid", "file", *configFile)
		return 0
	}

	// The exporter's own metrics (build info, Go runtime, process) come
	// from the default registry, the job metrics from the collector.
	prometheus.MustRegister(versioncollector.NewCollector(name), ex.telemetry, ex.reloadOK, ex.reloadTime)
	mux := http.NewServeMux()
	mux.Handle(*metricsPath, ex)
	mux.HandleFunc("/-/reload", ex.serveReload)
	// The landing page links to these. Like every path, they are behind
	// --web.config.file's basic auth when it has one.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	if *metricsPath != "/" {
		landing, err := web.NewLandingPage(web.LandingConfig{
			Name:        "NebulaGraph Explorer Exporter",
			Description: "Prometheus exporter for the workflow jobs of NebulaGraph Explorer",
			Version:     version.Info(),
			Links:       []web.LandingLinks{{Address: *metricsPath, Text: "Metrics"}},
		})
		if err != nil {
			level.Error(logger).Log("msg", "cannot build the landing page", "err", err)
			return 1
		}
		mux.Handle("/", landing)
	}

	level.Info(logger).Log("msg", "starting "+name, "version", version.Info(), "explorer", ex.config.Explorer.URL)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			ex.logReload(ex.reload())
		}
	}()
	// No client holds a connection, or the file descriptors, for ever. The
	// metrics handler lifts the read and write deadlines for a scrape,
	// which may wait sync.timeout for the sync.
	limit := newConnLimit(*maxConns)
	server := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      90 * time.Second, // above the landing page's 60 s CPU profile
		IdleTimeout:       5 * time.Minute,
		ConnState:         limit.track,
	}
	level.Info(logger).Log("msg", "HTTP connections capped", "max", limit.max)
	served := make(chan error, 1)
	go func() { served <- web.ListenAndServe(server, webFlags, slogger) }()
	select {
	case err := <-served:
		level.Error(logger).Log("msg", "cannot serve", "err", err)
		return 1
	case <-ctx.Done():
	}
	level.Info(logger).Log("msg", "shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := server.Shutdown(shutdownCtx)
	ex.metrics.Load().Close() // the last state to --persistence.file
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		level.Error(logger).Log("msg", "shutdown", "err", err)
		return 1
	}
	return 0
}

// exporter serves the metrics of the collector built from the current
// configuration. A reload (SIGHUP, or POST /-/reload) reads the file again
// and swaps in a new collector; a bad file keeps the running one.
type exporter struct {
	configFile  string
	logger      log.Logger
	persistence persistence // from the flags: the same for every collector

	mu        sync.Mutex // one reload at a time
	config    *config.Config
	metrics   atomic.Pointer[collector.Collector]
	scrapeMax atomic.Int64         // how long a scrape may take: sync.timeout and a margin to encode and write
	telemetry *collector.Telemetry // outlives collectors: counts since start

	// The outcome of the last (re)load, as blackbox_exporter has it.
	reloadOK, reloadTime prometheus.Gauge
}

func newExporter(configFile string, p persistence, logger log.Logger) *exporter {
	return &exporter{
		configFile:  configFile,
		logger:      logger,
		persistence: p,
		telemetry:   collector.NewTelemetry(),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nebula_explorer_config_last_reload_successful",
			Help: "1 when the last load of the configuration file (at start, SIGHUP or POST /-/reload) succeeded, else 0.",
		}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nebula_explorer_config_last_reload_success_timestamp_seconds",
			Help: "When the configuration file was last loaded successfully, in seconds since the epoch.",
		}),
	}
}

// persistence is where and how often the collector keeps its state.
type persistence struct {
	file     string
	interval time.Duration
}

func (e *exporter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The server's read and write timeouts are shorter than a scrape that
	// waits for a long sync; such a scrape gets its own deadline (an error
	// means a test's recorder, which has no deadline to lift).
	deadline := time.Now().Add(time.Duration(e.scrapeMax.Load()))
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(deadline)
	_ = rc.SetWriteDeadline(deadline)
	e.metrics.Load().ServeHTTP(w, r)
}

// reload loads the configuration file; unchanged, it keeps the collector
// and its synced state (a new one starts with a full sync).
func (e *exporter) reload() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	err := e.apply()
	if err != nil {
		e.reloadOK.Set(0)
		return err
	}
	e.reloadOK.Set(1)
	e.reloadTime.SetToCurrentTime()
	return nil
}

// apply loads the file and swaps in a collector for it; the caller holds mu.
func (e *exporter) apply() error {
	cfg, err := config.Load(e.configFile)
	if err != nil {
		return err
	}
	if e.config != nil && reflect.DeepEqual(cfg, e.config) {
		return nil
	}
	client, err := newClient(cfg, e.telemetry)
	if err != nil {
		return fmt.Errorf("%s: %w", e.configFile, err)
	}
	include, exclude := cfg.Workflows.Regexps()
	col := collector.New(client, collector.Options{
		PageSize:           cfg.Explorer.PageSize,
		Overlap:            time.Duration(cfg.Sync.Overlap),
		Lookback:           time.Duration(cfg.Sync.Lookback),
		FullResyncInterval: time.Duration(cfg.Sync.FullResyncInterval),
		SyncTimeout:        time.Duration(cfg.Sync.Timeout),
		RunBuckets:         cfg.Metrics.RunDurationBuckets,
		QueueBuckets:       cfg.Metrics.QueueDurationBuckets,
		TaskBuckets:        cfg.Metrics.TaskDurationBuckets,
		DropClassicBuckets: !cfg.Metrics.ClassicHistograms,
		Tasks: collector.TaskOptions{
			Enabled:            cfg.Tasks.Enabled,
			MaxRequestsPerSync: cfg.Tasks.MaxRequestsPerSync,
			Backfill:           time.Duration(cfg.Tasks.Backfill),
		},
		Workflows:           collector.WorkflowFilter{Include: include, Exclude: exclude},
		MaxWorkflows:        cfg.Limits.MaxWorkflows,
		MaxLabelLength:      cfg.Limits.MaxLabelLength,
		Concurrency:         cfg.Sync.Concurrency,
		MaxBackoff:          time.Duration(cfg.Sync.MaxBackoff),
		PersistenceFile:     e.persistence.file,
		PersistenceInterval: e.persistence.interval,
		ExplorerURL:         cfg.Explorer.URL,
		Telemetry:           e.telemetry,
		Extra:               prometheus.DefaultGatherer,
	}, e.logger)
	e.scrapeMax.Store(int64(time.Duration(cfg.Sync.Timeout) + time.Minute))
	col.Inherit(e.metrics.Load()) // counters continue across the reload
	e.metrics.Store(col)
	e.config = cfg
	return nil
}

func (e *exporter) logReload(err error) {
	if err != nil {
		level.Error(e.logger).Log("msg", "reloading the configuration failed; keeping the running one", "err", err)
		return
	}
	level.Info(e.logger).Log("msg", "configuration reloaded", "file", e.configFile)
}

// serveReload is POST /-/reload, as in Prometheus and blackbox_exporter.
func (e *exporter) serveReload(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		w.Header().Set("Allow", "POST, PUT")
		http.Error(w, "use POST or PUT to reload the configuration", http.StatusMethodNotAllowed)
		return
	}
	err := e.reload()
	e.logReload(err)
	if err != nil {
		http.Error(w, "reloading the configuration failed: "+err.Error(), http.StatusInternalServerError)
		return
	}
	fmt.Fprintln(w, "configuration reloaded")
}

// connLimit keeps at most max HTTP connections open. When one more is
// accepted, it closes the connection that has waited longest without a
// request under way (opened and silent, or idle between keep-alive
// requests), else the new one. Clients that hoard connections can thus
// neither run the process out of file descriptors nor keep a scrape out.
type connLimit struct {
	max   int
	mu    sync.Mutex
	conns map[net.Conn]connState
	ticks uint64 // orders the moments connections start to wait
}

type connState struct {
	busy  bool   // a request is under way
	since uint64 // the tick at which it last became idle (or was opened)
}

// newConnLimit caps at limit, and at half the file descriptor limit so that
// Explorer connections, the state file and the logs keep the other half.
func newConnLimit(limit int) *connLimit {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur/2 < uint64(limit) {
		limit = int(rl.Cur / 2)
	}
	return &connLimit{max: max(limit, 1), conns: map[net.Conn]connState{}} // 1 if the file limit is tiny
}

// track is the server's ConnState hook.
func (l *connLimit) track(c net.Conn, s http.ConnState) {
	var shed net.Conn
	l.mu.Lock()
	l.ticks++
	switch s {
	case http.StateNew:
		l.conns[c] = connState{since: l.ticks}
		if len(l.conns) > l.max {
			shed = c // when every other one is busy
			for other, st := range l.conns {
				if !st.busy && st.since < l.conns[shed].since {
					shed = other
				}
			}
			delete(l.conns, shed)
		}
	case http.StateActive:
		if _, ok := l.conns[c]; ok {
			l.conns[c] = connState{busy: true}
		}
	case http.StateIdle:
		if _, ok := l.conns[c]; ok {
			l.conns[c] = connState{since: l.ticks}
		}
	case http.StateHijacked, http.StateClosed:
		delete(l.conns, c)
	}
	l.mu.Unlock()
	if shed != nil {
		shed.Close() // outside the lock: the server calls track again
	}
}

// newClient builds the Explorer client from the config: TLS, timeout and login.
func newClient(cfg *config.Config, telemetry *collector.Telemetry) (*explorer.Client, error) {
	tlsConfig, err := promconfig.NewTLSConfig(&cfg.Explorer.TLSConfig)
	if err != nil {
		return nil, fmt.Errorf("explorer.tls_config: %w", err)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = tlsConfig
	return explorer.NewClient(explorer.Config{
		URL:          cfg.Explorer.URL,
		Username:     cfg.Explorer.Username,
		Password:     cfg.Explorer.ReadPassword,
		GraphAddress: cfg.Explorer.GraphAddress,
		GraphPort:    cfg.Explorer.GraphPort,
		Encoding:     cfg.Explorer.AuthEncoding,
		HTTPClient:   &http.Client{Transport: transport, Timeout: time.Duration(cfg.Explorer.Timeout)},
		UserAgent:    name + "/" + version.Version,

		OnRequest:            telemetry.ObserveRequest,
		MaxRequestsPerSecond: cfg.Explorer.MaxRequestsPerSecond,
	})
}

// newLoggers returns the go-kit logger the exporter logs with and an slog
// bridge to it for exporter-toolkit. The bridge adds its own time and caller,
// so it gets the logger without ours.
func newLoggers(lvl, format string) (log.Logger, *slog.Logger) {
	var base log.Logger
	if format == "json" {
		base = log.NewJSONLogger(log.NewSyncWriter(os.Stderr))
	} else {
		base = log.NewLogfmtLogger(log.NewSyncWriter(os.Stderr))
	}
	filter := map[string]level.Option{"debug": level.AllowDebug(), "info": level.AllowInfo(), "warn": level.AllowWarn(), "error": level.AllowError()}[lvl]
	slogLevel := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}[lvl]
	bridge := slog.New(sloggokit.NewGoKitHandler(level.NewFilter(base, filter), slogLevel))
	logger := log.With(level.NewFilter(base, filter), "ts", log.DefaultTimestampUTC, "caller", log.DefaultCaller)
	return logger, bridge
}
