package collector

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/go-kit/log/level"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
)

// When syncs start. A scrape starts a sync, or joins the one under way, with
// two exceptions that spare a failing Explorer:
//   - after failed syncs, no sync starts before a backoff has passed (scrapes
//     in between serve the last values with up 0 and send no request);
//   - a sync that made no progress (no request completed) for stallAfter is
//     abandoned by the next scrape, which starts a new one on a fresh
//     connection, instead of waiting behind a request hanging on a dead one.
const (
	// stallAfter is how long a sync may go without a completed request
	// before a scrape abandons it. A healthy Explorer answers a page in
	// milliseconds; a request hanging this long is on a dead connection.
	// It doubles with each sync abandoned in a row, up to maxStallAfter,
	// so that an Explorer that is merely slow still gets a sync through
	// (a request's own timeout, explorer.timeout, ends it before then).
	stallAfter    = 3 * time.Second
	maxStallAfter = 30 * time.Second
	// minBackoff is the first wait after a failure when scrapes come more
	// often than that (or their interval is not known yet).
	minBackoff = 10 * time.Second
)

// run is one sync under way.
type run struct {
	done     chan struct{}
	cancel   context.CancelFunc
	started  time.Time
	progress atomic.Int64 // clock time of the last completed request, ns since the epoch
	clock    func() time.Time
}

func (r *run) touch()                  { r.progress.Store(r.clock().UnixNano()) }
func (r *run) lastProgress() time.Time { return time.Unix(0, r.progress.Load()) }

// backoff is the schedule of the syncs after failures.
type backoff struct {
	failures     int       // consecutive failed syncs
	abandoned    int       // consecutive syncs abandoned for want of progress
	retryAt      time.Time // no sync starts before
	lastScrape   time.Time
	scrapeGap    time.Duration // between the last two scrapes: the scrape interval, roughly
	refusedShown bool          // the refused login was logged (once per streak)
}

// Sync brings the state up to date, or joins the sync under way, and returns
// when it is done or ctx ends. The sync itself runs on (bounded by
// SyncTimeout), so a slow first sync of a long history still completes and
// serves the scrapes that come after it. While backing off after failures
// it returns at once.
func (c *Collector) Sync(ctx context.Context) {
	r := c.startOrJoin()
	if r == nil {
		return
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		c.mu.Lock()
		serving := c.serving()
		c.mu.Unlock()
		level.Warn(c.logger).Log("msg", "scrape deadline reached before the sync finished; "+serving, "err", ctx.Err())
	}
}

// startOrJoin returns the sync under way, or a new one; nil while backing off.
func (c *Collector) startOrJoin() *run {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	b := &c.backoff
	if !b.lastScrape.IsZero() && now.After(b.lastScrape) {
		b.scrapeGap = now.Sub(b.lastScrape)
	}
	b.lastScrape = now
	if r := c.running; r != nil {
		if now.Sub(r.lastProgress()) < b.stallLimit() {
			return r
		}
		b.abandoned++
		r.cancel()
		c.running = nil
		c.opts.Telemetry.observeSync(false, false)
		c.health.ok = false
		c.failed(r, errors.New("no request completed for "+now.Sub(r.lastProgress()).Round(time.Second).String()+": a request hangs"),
			"hint", "abandoned; the next sync uses a fresh connection")
	}
	if now.Before(b.retryAt) {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &run{done: make(chan struct{}), cancel: cancel, started: now, clock: c.now}
	r.progress.Store(now.UnixNano())
	c.running = r
	go func() {
		defer cancel()
		c.syncOnce(ctx, r)
	}()
	return r
}

// failed records and logs the failure of r; c.mu is held. A refused login is
// logged once per streak of failures (a wrong password stays wrong), the
// other failures each time.
func (c *Collector) failed(r *run, err error, keyvals ...any) {
	b := &c.backoff
	b.failures++
	wait := c.backoffWait()
	b.retryAt = r.started.Add(wait)
	keyvals = append([]any{"msg", "sync with Explorer failed; " + c.serving(), "err", err}, keyvals...)
	if wait > 0 {
		keyvals = append(keyvals, "failures", b.failures, "next_sync_after", b.retryAt.Sub(c.now()).Round(time.Second))
	}
	switch {
	case !loginRefused(err):
		level.Error(c.logger).Log(keyvals...)
	case !b.refusedShown:
		b.refusedShown = true
		level.Error(c.logger).Log(append(keyvals, "hint", "Explorer refuses the credentials: check explorer.username and the password; retrying with backoff, logged again only after a successful login")...)
	default:
		level.Debug(c.logger).Log(keyvals...)
	}
}

// succeeded resets the backoff; c.mu is held.
func (c *Collector) succeeded() {
	b := &c.backoff
	b.failures, b.abandoned, b.retryAt, b.refusedShown = 0, 0, time.Time{}, false
}

// stallLimit is how long a sync may go without progress before a scrape
// abandons it: stallAfter, doubled for each sync abandoned in a row.
func (b *backoff) stallLimit() time.Duration {
	limit := stallAfter
	for i := 0; i < b.abandoned && limit < maxStallAfter; i++ {
		limit = min(2*limit, maxStallAfter)
	}
	return limit
}

// backoffWait is the wait after the latest of b.failures consecutive
// failures: from the scrape interval (at least minBackoff), doubling with
// each failure, up to MaxBackoff, less up to a quarter of it at random so
// that exporters that failed together do not retry in step. 0 when
// MaxBackoff is 0 (no backoff).
func (c *Collector) backoffWait() time.Duration {
	maxWait := c.opts.MaxBackoff
	if maxWait <= 0 {
		return 0
	}
	wait := min(max(c.backoff.scrapeGap, minBackoff), maxWait)
	for i := 1; i < c.backoff.failures && wait < maxWait; i++ {
		wait = min(2*wait, maxWait)
	}
	return wait - time.Duration(rand.Int64N(int64(wait/4)+1))
}

// loginRefused reports whether err is Explorer refusing the credentials.
func loginRefused(err error) bool { return errors.Is(err, explorer.ErrLoginRefused) }
