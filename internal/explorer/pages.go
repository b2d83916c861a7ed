package explorer

import (
	"context"
	"sync"
)

// A cold sync pages a long history in several listings at once, each
// holding the page it visits and the next one it fetched meanwhile. Those
// decoded pages are most of the exporter's memory while it syncs (the
// heap's goal is twice what is live), so EachJob decodes them into a
// client's few page buffers, reused page after page: at most
// maxPagesInMemory listing pages are decoded or visited at once, whatever
// the number of listings. A listing whose answer arrives while all are in
// use waits for one before decoding it; the requests themselves still
// overlap (a buffer is taken only when the answer's data begins).
const maxPagesInMemory = 4

// maxArenaTasks bounds the tasks array a page buffer keeps for its next
// page: a page with a job of thousands of tasks does not pin that much.
const maxArenaTasks = 16 << 10

// pageBuffer is what a listing page is decoded into: its items, one array
// for the tasks of all its items, and the strings it interns.
type pageBuffer struct {
	items []Job
	tasks []Task
	in    interned
}

// pagePool hands out at most maxPagesInMemory page buffers at once. When
// its last listing ends it drops them, so that between syncs the exporter
// holds no page memory; they grow again, as far as a page needs, with the
// next listing.
type pagePool struct {
	free chan *pageBuffer // nil: a buffer not made yet

	mu       sync.Mutex
	listings int // EachJob calls under way
}

// begin and end bracket a listing (an EachJob call).
func (p *pagePool) begin() {
	p.mu.Lock()
	p.listings++
	p.mu.Unlock()
}

func (p *pagePool) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.listings--; p.listings == 0 {
		for range len(p.free) { // all of them: no listing holds one
			<-p.free
			p.free <- nil
		}
	}
}

func newPagePool() *pagePool {
	p := &pagePool{free: make(chan *pageBuffer, maxPagesInMemory)}
	for range maxPagesInMemory {
		p.free <- nil
	}
	return p
}

// get waits for a buffer, emptied, or for ctx to end.
func (p *pagePool) get(ctx context.Context) (*pageBuffer, error) {
	select {
	case b := <-p.free:
		if b == nil {
			b = &pageBuffer{in: interned{}}
		}
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// put gives b back once nothing uses its page any more. It is cleared, so
// that it keeps no strings or tasks of that page alive, and the interned
// strings start afresh when they are many.
func (p *pagePool) put(b *pageBuffer) {
	if b == nil {
		return
	}
	clear(b.items[:cap(b.items)])
	b.items = b.items[:0]
	if cap(b.tasks) > maxArenaTasks {
		b.tasks = nil
	}
	clear(b.tasks[:cap(b.tasks)])
	b.tasks = b.tasks[:0]
	if len(b.in) >= maxInterned {
		clear(b.in)
	}
	p.free <- b
}
