package collector

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// scrapeTimeoutOffset is left of Prometheus's scrape timeout for rendering
// and sending the answer.
const scrapeTimeoutOffset = 500 * time.Millisecond

// ServeHTTP serves the metrics: it syncs (or joins the sync under way),
// waiting no longer than the scrape's own timeout, then serves the job
// metrics of the last good sync, the health of the last sync and what
// Options.Extra gathers (build info, Go and process metrics). It answers 200
// with what it has, Explorer down or not, in the text or protobuf format,
// gzipped if asked.
func (c *Collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	timeout := c.scrapeTimeout(r)
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	syncCtx, cancelSync := context.WithTimeout(ctx, max(timeout-scrapeTimeoutOffset, timeout/2))
	defer cancelSync()
	c.Sync(syncCtx)
	c.serve(ctx, w, r)
}

// serve writes the current values in the format and compression the client
// asks for. Only encoding can fail a scrape: a failure to gather the
// exporter's own metrics is logged and the rest is served. Encoding stops
// when ctx ends (the scrape's deadline): nobody waits for the answer then.
func (c *Collector) serve(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	jobs, reg := c.current()
	gatherers := prometheus.Gatherers{reg}
	if c.opts.Extra != nil {
		gatherers = append(gatherers, c.opts.Extra)
	}
	families, gatherErr := gatherers.Gather()
	if gatherErr != nil {
		level.Error(c.logger).Log("msg", "gathering the exporter's own metrics", "err", gatherErr)
	}

	format := expfmt.NegotiateAccept(r.Header, acceptedFormats...)
	gz := acceptsGzip(r)
	body, err := jobs.gzipped(ctx, format)
	var tail []byte
	if err == nil {
		tail, err = encode(ctx, families, format, gz, true)
	}
	if ctxErr := ctx.Err(); err != nil && errors.Is(err, ctxErr) {
		level.Error(c.logger).Log("msg", "encoding metrics ran past the scrape's deadline; nothing served", "err", err)
		http.Error(w, "encoding metrics ran past the scrape's deadline", http.StatusServiceUnavailable)
		return
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
		w.Write(body)
	} else if err := writePlain(w, body); err != nil {
		level.Debug(c.logger).Log("msg", "sending metrics", "err", err) // the client went away
		return
	}
	w.Write(tail)
}

// acceptedFormats are the formats served: OpenMetrics (which carries the
// exemplars) when asked for by name, after the usual ones, so that a
// wildcard Accept (curl) still gets the text format. Only those the
// exposition cache keeps (see cachedEncoding), so no Accept header makes the
// exporter encode the job metrics once per request: a client asking for
// protobuf text gets the text format.
var acceptedFormats = []expfmt.Format{expfmt.FmtProtoDelim, expfmt.FmtText, expfmt.FmtText_1_0_0,
	expfmt.FmtOpenMetrics_1_0_0, expfmt.FmtOpenMetrics_0_0_1}

// scrapeTimeout is how long the scraper waits for the answer: its
// X-Prometheus-Scrape-Timeout-Seconds, else sync.timeout. The sync may take
// all of it but scrapeTimeoutOffset (or half of it, when shorter).
func (c *Collector) scrapeTimeout(r *http.Request) time.Duration {
	if v := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds"); v != "" {
		if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 && s < 1e6 {
			return time.Duration(s * float64(time.Second))
		}
	}
	return c.opts.SyncTimeout
}

// acceptsGzip reports whether the client takes a gzipped answer, as
// Prometheus does.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			q := 1.0 // "gzip;q=0" refuses it
			if v, ok := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q="); ok {
				q, _ = strconv.ParseFloat(v, 64)
			}
			return q > 0
		}
	}
	return false
}
