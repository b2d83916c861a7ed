package collector

import (
	"bytes"
	"compress/gzip"
	"sync"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// exposition is the job metrics of one synced state, rendered and encoded
// at most once per format and compression asked for. They change only when
// a sync changes the state, while every scrape (of every Prometheus in an HA
// pair) reads them; at 1,000 workflows, rendering and encoding them for each
// scrape would be most of its cost. Only the encoded bytes are kept: the
// rendered families weigh ten times more.
type exposition struct {
	state *state // never modified once synced

	mu      sync.Mutex
	encoded map[string][]byte // by format and compression
}

func newExposition(s *state) *exposition {
	return &exposition{state: s, encoded: map[string][]byte{}}
}

// bytes returns the families encoded in format, gzipped as one gzip member
// if gz: a client reads consecutive members as one stream.
func (x *exposition) bytes(format expfmt.Format, gz bool) ([]byte, error) {
	if x == nil {
		return nil, nil // no good sync yet: no job metrics
	}
	key := string(format)
	if gz {
		key += ";gzip"
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if b, ok := x.encoded[key]; ok {
		return b, nil
	}
	var b []byte
	var err error
	if format.FormatType() == expfmt.TypeTextPlain {
		// The format of (almost) every scrape: written straight from the state.
		b, err = compress(appendText(nil, x.state), gz)
	} else {
		b, err = encode(render(x.state), format, gz, false)
	}
	if err != nil {
		return nil, err
	}
	x.encoded[key] = b
	return b, nil
}

// encode writes families in format, gzipped if gz; with closing, also the
// format's end (OpenMetrics' "# EOF").
func encode(families []*dto.MetricFamily, format expfmt.Format, gz, closing bool) ([]byte, error) {
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, format)
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return nil, err
		}
	}
	if closer, ok := enc.(expfmt.Closer); ok && closing {
		if err := closer.Close(); err != nil {
			return nil, err
		}
	}
	return compress(buf.Bytes(), gz)
}

// compress gzips b (as one gzip member) if gz.
func compress(b []byte, gz bool) ([]byte, error) {
	if !gz {
		return b, nil
	}
	buf := bytes.NewBuffer(make([]byte, 0, len(b)/8))
	zw, _ := gzip.NewWriterLevel(buf, gzip.BestSpeed)
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
