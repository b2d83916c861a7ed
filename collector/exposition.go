package collector

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"mime"
	"sync"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// exposition is the job metrics of one synced state, rendered and encoded
// at most once per cached encoding. They change only when a sync changes the
// state, while every scrape (of every Prometheus in an HA pair) reads them;
// at 1,000 workflows, rendering and encoding them for each scrape would be
// most of its cost.
//
// Memory is bounded whatever clients ask for: the cache has one slot per
// encoding (see encoding), whatever the Accept header, and keeps only the
// gzipped bytes, a twentieth of the plain ones (Prometheus always asks for
// gzip; a scrape without it gets them decompressed as they are sent).
// Encoding writes through gzip as it walks the state, one family at a time,
// so neither the plain text nor all the rendered families are ever whole
// in memory.
type exposition struct {
	state *state // never modified once synced

	mu      sync.Mutex
	encoded [numEncodings][]byte // gzipped, one gzip member each
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

// gzipped returns the job metrics encoded in format, as one gzip member: a
// client reads consecutive members as one stream. Encoding stops with ctx's
// error when ctx ends first (the scrape's deadline): a huge state must not
// hold the handler past the time its client waits.
func (x *exposition) gzipped(ctx context.Context, format expfmt.Format) ([]byte, error) {
	if x == nil {
		return nil, nil // no good sync yet: no job metrics
	}
	enc, cached := cachedEncoding(format)
	if !cached {
		return x.encode(ctx, format)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if b := x.encoded[enc]; b != nil {
		return b, nil
	}
	b, err := x.encode(ctx, canonical[enc])
	if err != nil {
		return nil, err
	}
	x.encoded[enc] = b
	return b, nil
}

// cachedBytes is how many bytes the cache holds.
func (x *exposition) cachedBytes() (n int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, b := range x.encoded {
		n += len(b)
	}
	return n
}

// encode writes the job metrics in format through gzip: the text formats
// straight from the state, the others family by family.
func (x *exposition) encode(ctx context.Context, format expfmt.Format) ([]byte, error) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	var err error
	// Text and OpenMetrics (what Prometheus 3 asks for first) are written
	// straight from the state; OpenMetrics 1.0.0 is the cached one.
	if openMetrics := format == canonical[encOpenMetrics]; format.FormatType() == expfmt.TypeTextPlain || openMetrics {
		err = writeText(ctx, zw, x.state, openMetrics)
	} else {
		err = writeFamilies(ctx, zw, x.state, format)
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writePlain writes gzipped, one gzip member, decompressed.
func writePlain(w io.Writer, gzipped []byte) error {
	if len(gzipped) == 0 {
		return nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(gzipped))
	if err != nil {
		return err
	}
	_, err = io.Copy(w, zr)
	return err
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
