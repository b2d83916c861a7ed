package collector

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer/explorertest"
	"github.com/nebula-contrib/nebula_explorer_exporter/internal/localtest"
)

// withFakeClock makes scrapes advance the collector's clock, so minutes of
// scrapes in the backoff tests take no real time.
func withFakeClock(e *testEnv) *localtest.Clock {
	clock := localtest.NewClock(time.UnixMilli(t0))
	e.col.now = clock.Now
	return clock
}

// scrape is one scrape's sync, waiting at most wait of real time for it;
// it reports up.
func (e *testEnv) scrape(wait time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	e.col.Sync(ctx)
	e.col.mu.Lock()
	defer e.col.mu.Unlock()
	return e.col.health.ok
}

func connects(fake *explorertest.Explorer) int {
	s := fake.Stats()
	return s.Logins + s.FailedLogins
}

func TestWrongPasswordBacksOff(t *testing.T) {
	e := newTestEnv(t, func(o *Options) { o.MaxBackoff = 5 * time.Minute })
	clock := withFakeClock(e)
	addHistory(e.fake, 5, t0)
	e.mustSync(t)
	before := jobMetrics(t, e.col)

	e.fake.SetCredentials("root", "changed")
	e.col.client = e.newCollector(t).client // logs in afresh, like a restart with the old password
	e.fake.ResetStats()
	for range 120 {
		clock.Advance(time.Second)
		if e.scrape(5 * time.Second) {
			t.Fatal("up 1 with a wrong password")
		}
		if got := jobMetrics(t, e.col); got != before {
			t.Fatalf("a failed sync changed the values:\n%s", diffSamples(t, got, before))
		}
	}
	n := connects(e.fake)
	t.Logf("wrong password, a scrape every second for 2 minutes: %d /connect calls", n)
	if n == 0 || n > 10 {
		t.Errorf("%d /connect calls in 2 minutes, want 1 to 10", n)
	}
	if got := strings.Count(e.logs.String(), "refuses the credentials"); got != 1 {
		t.Errorf("the refused login is logged %d times, want once:\n%s", got, e.logs)
	}

	e.fake.SetCredentials("root", "nebula")
	clock.Advance(5 * time.Minute)
	if !e.scrape(5 * time.Second) {
		t.Fatalf("no recovery after the password was fixed and the backoff passed:\n%s", e.logs)
	}
}

// TestBackoffDoubles: against a failing Explorer, the syncs (each one
// request) come at waits that double from the scrape interval up to
// MaxBackoff, less at most a quarter for jitter; a success resets them.
func TestBackoffDoubles(t *testing.T) {
	const interval, maxBackoff = 15 * time.Second, 2 * time.Minute
	e := newTestEnv(t, func(o *Options) { o.MaxBackoff = maxBackoff })
	clock := withFakeClock(e)
	e.mustSync(t)
	e.fake.SetQuirks(explorertest.Quirks{HTTPStatus: 500})
	var syncs []time.Time
	for range 100 { // 25 minutes
		clock.Advance(interval)
		n := e.fake.Stats().Requests
		e.scrape(5 * time.Second)
		if e.fake.Stats().Requests > n {
			syncs = append(syncs, clock.Now())
		}
	}
	want := interval
	for i := 1; i < len(syncs); i++ {
		gap := syncs[i].Sub(syncs[i-1])
		if gap < want*3/4 || gap > want+interval {
			t.Errorf("wait after failure %d: %v, want %v less at most a quarter (scrapes every %v)", i, gap, want, interval)
		}
		want = min(2*want, maxBackoff)
	}
	if len(syncs) < 10 || len(syncs) > 20 {
		t.Errorf("%d syncs in 25 minutes: %v", len(syncs), syncs)
	}

	e.fake.SetQuirks(explorertest.Quirks{})
	clock.Advance(maxBackoff)
	if !e.scrape(5 * time.Second) {
		t.Fatalf("no recovery:\n%s", e.logs)
	}
	e.fake.SetQuirks(explorertest.Quirks{HTTPStatus: 500})
	clock.Advance(interval)
	e.scrape(5 * time.Second)
	e.fake.SetQuirks(explorertest.Quirks{})
	clock.Advance(interval)
	if !e.scrape(5 * time.Second) {
		t.Error("after a success, the first failure delayed the next sync by more than a scrape interval")
	}
}

// TestRecoveryFromHungExplorer checks the promise of the README ("Failing
// Explorer"): a scrape abandons a sync that made no progress for
// stallAfter, so once Explorer answers again, up is 1 at the first scrape
// after at most max(stallAfter, the backoff then due) — at most
// max(stallAfter, MaxBackoff) plus one scrape interval.
func TestRecoveryFromHungExplorer(t *testing.T) {
	cases := []struct {
		name             string
		interval         time.Duration
		hungFor          time.Duration // before Explorer answers again
		maxBackoff       time.Duration
		wantWithin       time.Duration
		scrapesWhileHung int
	}{
		{"a hang of one scrape, 15 s scrapes: the next scrape", 15 * time.Second, time.Second, 5 * time.Minute, 15 * time.Second, 1},
		{"a hang of one scrape, 1 s scrapes", time.Second, time.Second, 5 * time.Minute, minBackoff + time.Second, 1},
		{"a long hang, 1 s scrapes", time.Second, 10 * time.Minute, time.Minute, time.Minute + time.Second, 600},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, func(o *Options) { o.MaxBackoff = tc.maxBackoff })
			clock := withFakeClock(e)
			addHistory(e.fake, 5, t0)
			e.mustSync(t)
			hang := make(chan struct{})
			t.Cleanup(func() { close(hang) })                 // before the server closes
			e.fake.SetQuirks(explorertest.Quirks{Hang: hang}) // requests sent now never get an answer
			e.fake.ResetStats()
			hangBeganReal := time.Now()
			for range tc.scrapesWhileHung {
				clock.Advance(tc.interval)
				e.scrape(10 * time.Millisecond) // up shows the last completed sync
			}
			hungRequests := e.fake.Stats().Requests
			t.Logf("%v hung: %d requests", tc.hungFor, hungRequests)
			if limit := int(tc.hungFor/(tc.maxBackoff*3/4)) + 5; hungRequests > limit {
				t.Errorf("%d requests to a hung Explorer in %v, want at most %d", hungRequests, tc.hungFor, limit)
			}
			hangBegan := clock.Now().Add(-time.Duration(tc.scrapesWhileHung-1) * tc.interval)
			recovered := hangBegan.Add(tc.hungFor)
			e.fake.SetQuirks(explorertest.Quirks{})
			for {
				clock.Advance(tc.interval)
				// Real time enough for a sync on a loaded machine; a scrape
				// that joins the hung sync waits it all out (twice at most).
				up := e.scrape(2 * time.Second)
				e.col.mu.Lock()
				synced := e.col.health.lastSuccess.After(hangBeganReal)
				e.col.mu.Unlock()
				if up && synced {
					break
				}
				if clock.Now().Sub(recovered) > 20*time.Minute {
					t.Fatalf("no recovery after 20 minutes:\n%s", e.logs)
				}
			}
			took := clock.Now().Sub(recovered)
			t.Logf("up 1 again %v after Explorer recovered", took)
			if took > tc.wantWithin {
				t.Errorf("up 1 again %v after Explorer recovered, want within %v", took, tc.wantWithin)
			}
			if got, want := jobMetrics(t, e.col), e.fresh(t); got != want {
				t.Errorf("values after recovery differ from a fresh exporter's:\n%s", diffSamples(t, got, want))
			}
		})
	}
}

// TestSlowExplorerGetsThrough: a sync whose requests are merely slow (each
// takes longer than a scrape interval on the collector's clock) may be
// abandoned once, but the stall limit doubles and the next sync completes.
func TestSlowExplorerGetsThrough(t *testing.T) {
	e := newTestEnv(t, func(o *Options) { o.MaxBackoff = 5 * time.Minute })
	clock := withFakeClock(e)
	addHistory(e.fake, 30, t0) // 10 pages of 3
	e.fake.SetQuirks(explorertest.Quirks{Delay: 20 * time.Millisecond})
	for scrapes := 0; ; scrapes++ {
		// Every request spans a scrape; one or more completes per scrape.
		clock.Advance(stallAfter + time.Second)
		if e.scrape(100 * time.Millisecond) {
			break
		}
		if scrapes == 100 {
			t.Fatalf("no sync got through a slow Explorer:\n%s", e.logs)
		}
	}
	if n := strings.Count(e.logs.String(), "a request hangs"); n > 3 {
		t.Errorf("%d syncs abandoned, want 1 (a loaded machine: a few) before the stall limit exceeds the request time:\n%s", n, e.logs)
	}
}
