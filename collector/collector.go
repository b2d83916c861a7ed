// Package collector turns Explorer's job history into the exporter's metrics:
// it keeps an incrementally synced state of the jobs and renders it on each
// scrape.
package collector

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"golang.org/x/sync/singleflight"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
)

// Options tune the sync; the config package gives their defaults.
type Options struct {
	PageSize           int           // pageSize asked of Explorer
	Overlap            time.Duration // listings start this far before the newest job seen
	Lookback           time.Duration // unfinished jobs this recent are refreshed by the listing
	FullResyncInterval time.Duration // full history re-read; 0: never after the first
	SyncTimeout        time.Duration // bound of one sync
	RunBuckets         []float64     // seconds
	QueueBuckets       []float64     // seconds
}

// scrapeTimeoutOffset is left of Prometheus's scrape timeout for rendering
// and sending the answer.
const scrapeTimeoutOffset = 500 * time.Millisecond

// Collector syncs with Explorer and serves the metrics. Concurrent scrapes
// share one sync.
type Collector struct {
	client *explorer.Client
	opts   Options
	logger log.Logger
	flight singleflight.Group

	mu       sync.Mutex
	state    *state      // last good sync; nil before the first
	jobs     *exposition // the job metrics of state, shared by scrapes
	lastFull time.Time   // when state was last rebuilt from the full history
	health   syncHealth
}

// syncHealth describes the last completed sync.
type syncHealth struct {
	ok          bool
	duration    time.Duration
	requests    int
	lastSuccess time.Time
}

// New returns a collector; it does not contact Explorer before the first scrape.
func New(client *explorer.Client, opts Options, logger log.Logger) *Collector {
	return &Collector{client: client, opts: opts, logger: logger}
}

// Handler serves the metrics: it syncs (or joins the sync under way), waiting
// no longer than the scrape's own timeout, then serves the job metrics of the
// last good sync, the health of the last sync and what extra gathers (build
// info, Go and process metrics). It answers 200 with what it has, Explorer
// down or not, in the text or protobuf format, gzipped if asked.
func (c *Collector) Handler(extra prometheus.Gatherer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), c.scrapeTimeout(r))
		defer cancel()
		c.Sync(ctx)
		c.serve(w, r, extra)
	})
}

// serve writes the current values in the format and compression the client asks for.
func (c *Collector) serve(w http.ResponseWriter, r *http.Request, extra prometheus.Gatherer) {
	jobs, reg := c.current()
	families, err := prometheus.Gatherers{reg, extra}.Gather()
	if err != nil {
		level.Error(c.logger).Log("msg", "gathering the exporter's own metrics", "err", err)
	}

	format := expfmt.NegotiateAccept(r.Header, expfmt.DefaultAcceptedFormats()...)
	gz := acceptsGzip(r)
	var body []byte
	if jobs != nil {
		body, err = jobs.bytes(format, gz)
	}
	var tail []byte
	if err == nil {
		tail, err = encode(families, format, gz, true)
	}
	if err != nil {
		level.Error(c.logger).Log("msg", "encoding metrics", "err", err)
		http.Error(w, "encoding metrics: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", string(format))
	w.Header().Add("Vary", "Accept")
	w.Header().Add("Vary", "Accept-Encoding")
	if gz {
		w.Header().Set("Content-Encoding", "gzip")
	}
	w.Write(body)
	w.Write(tail)
}

// scrapeTimeout is how long a scrape may wait for the sync.
func (c *Collector) scrapeTimeout(r *http.Request) time.Duration {
	if v := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds"); v != "" {
		if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 {
			return max(time.Duration(s*float64(time.Second))-scrapeTimeoutOffset, scrapeTimeoutOffset)
		}
	}
	return c.opts.SyncTimeout
}

// Sync brings the state up to date, or joins the sync under way, and returns
// when it is done or ctx ends. The sync itself runs on (bounded by
// SyncTimeout), so a slow first sync of a long history still completes and
// serves the scrapes that come after it.
func (c *Collector) Sync(ctx context.Context) {
	done := c.flight.DoChan("sync", func() (any, error) {
		c.syncOnce()
		return nil, nil
	})
	select {
	case <-done:
	case <-ctx.Done():
		level.Warn(c.logger).Log("msg", "scrape deadline reached before the sync finished; serving the last synced values", "err", ctx.Err())
	}
}

func (c *Collector) syncOnce() {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.SyncTimeout)
	defer cancel()
	start := time.Now()

	c.mu.Lock()
	old, lastFull := c.state, c.lastFull
	c.mu.Unlock()

	y := &syncer{client: c.client, pageSize: c.opts.PageSize, overlap: c.opts.Overlap, lookback: c.opts.Lookback}
	full := old == nil || (c.opts.FullResyncInterval > 0 && start.Sub(lastFull) >= c.opts.FullResyncInterval)
	var next *state
	var err error
	if full {
		next = newState(c.opts.RunBuckets, c.opts.QueueBuckets)
		err = y.full(ctx, next)
		if err == nil && old != nil {
			next.keepCountersFrom(old)
		}
	} else {
		next = old.clone()
		err = y.incremental(ctx, next)
	}
	if err == nil {
		next.raiseFloor(next.listFrom(c.opts.Overlap.Milliseconds(), c.opts.Lookback.Milliseconds()))
	}
	end := time.Now()

	c.mu.Lock()
	defer c.mu.Unlock()
	c.health.ok, c.health.duration, c.health.requests = err == nil, end.Sub(start), y.requests
	if err != nil {
		keyvals := []any{"msg", "sync with Explorer failed; serving the last synced values", "full", full, "requests", y.requests, "err", err}
		if errors.Is(err, context.DeadlineExceeded) {
			keyvals = append(keyvals, "hint", "the sync ran out of time: raise sync.timeout ("+c.opts.SyncTimeout.String()+")")
		}
		level.Error(c.logger).Log(keyvals...)
		return
	}
	level.Debug(c.logger).Log("msg", "synced with Explorer", "full", full, "requests", y.requests, "duration", end.Sub(start),
		"workflows", len(next.workflows), "unfinished", len(next.unfinished))
	if !full && !next.changed {
		c.health.lastSuccess = end // nothing changed: keep serving the same metrics
		return
	}
	c.state, c.jobs, c.health.lastSuccess = next, newExposition(next), end
	if full {
		c.lastFull = start
	}
}

// current returns the job metrics of the last good sync and a registry of
// the health of the last sync, read together so a scrape sees one moment.
func (c *Collector) current() (*exposition, *prometheus.Registry) {
	c.mu.Lock()
	jobs, h := c.jobs, health(c.health)
	c.mu.Unlock()
	reg := prometheus.NewRegistry()
	reg.MustRegister(h)
	return jobs, reg
}

// Gatherer returns the current values, consistent with each other: the job
// metrics of the last good sync and the health of the last sync.
func (c *Collector) Gatherer() prometheus.Gatherer {
	jobs, reg := c.current()
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		families, err := reg.Gather()
		if jobs != nil {
			families = append(families, render(jobs.state)...)
		}
		return families, err
	})
}
