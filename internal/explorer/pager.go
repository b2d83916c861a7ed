package explorer

import (
	"context"
	"slices"
	"strconv"
)

// EachJob visits every job that matches f exactly once, oldest first, and
// returns the number of requests it made. f's createTime bounds are
// inclusive; 0 is no bound. visit must not keep a job's Tasks slice after
// it returns: its array is reused for a later page (copy what it needs; the
// strings may be kept).
//
// Offset paging over a changing listing counts jobs twice or misses them, and
// deep offsets are costly for Explorer's database. So EachJob pages by key
// (see pager). The next page is fetched while visit works through the
// current one, so a long listing costs little more than fetching its pages.
// Pages are decoded into the client's page buffers (see pagePool).
func (c *Client) EachJob(ctx context.Context, f Filter, pageSize int, visit func(Job)) (requests int, err error) {
	type answer struct {
		page *JobPage
		buf  *pageBuffer
		err  error
	}
	fetch := func(f Filter, page int) <-chan answer {
		ch := make(chan answer, 1)
		go func() {
			p, buf, err := c.listJobs(ctx, f, page, pageSize, c.pages)
			ch <- answer{p, buf, err}
		}()
		return ch
	}
	c.pages.begin()
	defer c.pages.end()
	p := newPager(f, pageSize)
	next := fetch(p.request())
	for {
		a := <-next
		requests++
		if a.err != nil {
			return requests, a.err
		}
		n := len(a.page.Items)
		fresh := p.accept(a.page.Items)
		done, err := p.advance(a.page, n, len(fresh))
		if err != nil {
			c.pages.put(a.buf)
			return requests, err
		}
		if !done {
			next = fetch(p.request())
		}
		for _, j := range fresh {
			visit(j)
		}
		c.pages.put(a.buf)
		if done {
			return requests, nil
		}
	}
}

// pager is the key-set bookkeeping of EachJob. It asks in ascending
// createTime from (just before) the createTime of the newest job it has
// visited, and skips the jobs it visited already. Only when one millisecond
// holds more than a page of jobs does it step the page number.
//
// Explorer's docs do not say whether its time bounds are inclusive, so the
// pager asks one millisecond wider and drops what lies outside. It trusts
// neither the page size nor the total of an answer: a page that brings
// nothing new ends the listing, or a page shorter than the page size that
// the total agrees is the last one. Without a lower bound in f, jobs with a
// negative createTime are visited like any other.
type pager struct {
	f        Filter // the caller's filter
	pageSize int    // asked for

	visited bool           // a job was visited
	last    int64          // createTime of the newest job visited
	atLast  map[int64]bool // ids visited at last

	req  Filter // the next request
	page int
	// The ids of the last page answered and whether the page now answered
	// repeats them (accept notes both), to catch a page number ignored.
	prevIDs  []int64
	repeated bool
}

func newPager(f Filter, pageSize int) *pager {
	p := &pager{f: f, pageSize: pageSize, atLast: map[int64]bool{}, page: 1}
	p.req = Filter{Status: f.Status, OrderByCreateTime: "asc"}
	if f.FromCreateTime != 0 {
		p.req.FromCreateTime = bound(f.FromCreateTime - 1)
	}
	if f.ToCreateTime != 0 {
		p.req.ToCreateTime = f.ToCreateTime + 1
		if p.req.ToCreateTime == 0 {
			p.req.ToCreateTime = 1
		}
	}
	return p
}

// bound is a lower bound as a filter can say it: 0 means none, so a bound
// of 0 is asked as -1 (one more millisecond to drop).
func bound(ms int64) int64 {
	if ms == 0 {
		return -1
	}
	return ms
}

// request is the filter and page number of the next request.
func (p *pager) request() (Filter, int) { return p.req, p.page }

// accept returns the jobs of a page not visited before and within the
// caller's bounds, in order, and notes them as visited. It filters in
// place: what it returns is the front of items' array, overwritten.
func (p *pager) accept(items []Job) []Job {
	p.repeated = p.prevIDs != nil && slices.EqualFunc(p.prevIDs, items, func(id int64, j Job) bool { return id == j.ID })
	p.prevIDs = p.prevIDs[:0]
	fresh := items[:0]
	for _, j := range items {
		p.prevIDs = append(p.prevIDs, j.ID)
		switch {
		case p.visited && (j.CreateTime < p.last || j.CreateTime == p.last && p.atLast[j.ID]):
			continue // visited on an earlier page
		case p.f.FromCreateTime != 0 && j.CreateTime < p.f.FromCreateTime,
			p.f.ToCreateTime != 0 && j.CreateTime > p.f.ToCreateTime:
			continue // in the millisecond asked for in excess
		}
		if !p.visited || j.CreateTime > p.last {
			p.visited, p.last = true, j.CreateTime
			clear(p.atLast)
		}
		p.atLast[j.ID] = true
		fresh = append(fresh, j)
	}
	return fresh
}

// advance decides, from the page just answered (accepted already), how
// many items it had and how many new jobs it brought, whether the listing
// is done, and otherwise what to ask next.
func (p *pager) advance(page *JobPage, n, fresh int) (done bool, err error) {
	size := p.pageSize
	if page.PageSize > 0 && page.PageSize < size {
		size = page.PageSize // the server's cap
	}
	short := n < size
	switch {
	case n == 0:
		return true, nil
	case short && (fresh == 0 || (p.page-1)*size+n >= page.Total):
		return true, nil
	case fresh == 0 && p.page > 1 && p.repeated:
		return false, &InvalidAnswerError{Op: "list jobs", Reason: "page_ignored",
			Detail: "page " + strconv.Itoa(p.page) + " repeats the page before it (page number ignored?)"}
	}
	// From one millisecond before the newest job visited: the rest of that
	// millisecond may be on the next page.
	if p.visited && bound(p.last-1) > p.req.FromCreateTime || p.visited && p.req.FromCreateTime == 0 {
		p.req.FromCreateTime, p.page = bound(p.last-1), 1
		return false, nil
	}
	p.page++ // a whole page within one millisecond: step through it
	return false, nil
}
