package collector

import (
	"bytes"
	"compress/gzip"
	"context"
	"mime"
	"sync"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// exposition is the job metrics of one synced state, rendered and encoded
// at most once per cached encoding. They change only when a sync changes the
// state, while every scrape (of every Prometheus in an HA pair) reads them;
// at 1,000 workflows, rendering and encoding them for each scrape would be
// most of its cost. Only the encoded bytes are kept: the rendered families
// weigh ten times more.
//
// The cache has a fixed number of slots (see encoding), whatever Accept
// headers clients send: an encoding outside them is made per request and
// not kept, so no client can grow the exporter's memory by asking for
// variants.
type exposition struct {
	state *state // never modified once synced

	mu      sync.Mutex
	encoded [numEncodings][2][]byte // by encoding, then gzip (1) or not (0)
}

// encoding is a format the cache keeps, with and without gzip.
type encoding int

const (
	encText        encoding = iota // text 0.0.4 (and 1.0.0: the same bytes)
	encProto                       // delimited protobuf
	encOpenMetrics                 // OpenMetrics 0.0.1 and 1.0.0 (the same encoder)
	numEncodings
)

// canonical are the formats the cached bytes are encoded in.
var canonical = [numEncodings]expfmt.Format{
	encText:        expfmt.NewFormat(expfmt.TypeTextPlain),
	encProto:       expfmt.NewFormat(expfmt.TypeProtoDelim),
	encOpenMetrics: expfmt.FmtOpenMetrics_1_0_0,
}

// cachedEncoding maps a negotiated format onto its cache slot. The escaping
// scheme is ignored: every job metric's name and label names are valid
// legacy names, which every scheme leaves as they are, so the bytes are the
// same. Other formats (protobuf text, OpenMetrics 2.0) are not cached.
func cachedEncoding(format expfmt.Format) (encoding, bool) {
	switch format.FormatType() {
	case expfmt.TypeTextPlain:
		return encText, true
	case expfmt.TypeProtoDelim:
		return encProto, true
	case expfmt.TypeOpenMetrics:
		_, params, err := mime.ParseMediaType(string(format))
		switch v := params["version"]; {
		case err != nil:
		case v == "", v == expfmt.OpenMetricsVersion_0_0_1, v == expfmt.OpenMetricsVersion_1_0_0:
			return encOpenMetrics, true
		}
	}
	return 0, false
}

func newExposition(s *state) *exposition {
	return &exposition{state: s}
}

// bytes returns the families encoded in format, gzipped as one gzip member
// if gz: a client reads consecutive members as one stream. Rendering stops
// with ctx's error when ctx ends first (the scrape's deadline): a huge state
// must not hold the handler past the time its client waits.
func (x *exposition) bytes(ctx context.Context, format expfmt.Format, gz bool) ([]byte, error) {
	if x == nil {
		return nil, nil // no good sync yet: no job metrics
	}
	enc, cached := cachedEncoding(format)
	if !cached {
		return x.encode(ctx, format, gz)
	}
	z := 0
	if gz {
		z = 1
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if b := x.encoded[enc][z]; b != nil {
		return b, nil
	}
	b, err := x.encode(ctx, canonical[enc], gz)
	if err != nil {
		return nil, err
	}
	x.encoded[enc][z] = b
	return b, nil
}

// cachedBytes is how many bytes the cache holds.
func (x *exposition) cachedBytes() (n int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for i := range x.encoded {
		for _, b := range x.encoded[i] {
			n += len(b)
		}
	}
	return n
}

func (x *exposition) encode(ctx context.Context, format expfmt.Format, gz bool) ([]byte, error) {
	if format.FormatType() == expfmt.TypeTextPlain {
		// The format of (almost) every scrape: written straight from the
		// state, and gzipped as it is written.
		if gz {
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
			if err := writeText(ctx, zw, x.state); err != nil {
				return nil, err
			}
			if err := zw.Close(); err != nil {
				return nil, err
			}
			return buf.Bytes(), nil
		}
		return appendText(ctx, nil, x.state)
	}
	families, err := render(ctx, x.state)
	if err != nil {
		return nil, err
	}
	return encode(ctx, families, format, gz, false)
}

// encode writes families in format, gzipped if gz; with closing, also the
// format's end (OpenMetrics' "# EOF").
func encode(ctx context.Context, families []*dto.MetricFamily, format expfmt.Format, gz, closing bool) ([]byte, error) {
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, format)
	for _, f := range families {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
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
