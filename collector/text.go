package collector

import (
	"bytes"
	"context"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// textEmitter writes the text format (0.0.4), or OpenMetrics, byte for byte
// as expfmt writes the same families (tests hold them equal), escaping each
// workflow's labels once instead of once per sample.
type textEmitter struct {
	b       []byte
	current *family
	labels  map[workflowKey]string // `workflow="…",workflow_id="…"`, escaped

	dropClassic bool // histograms without their finite buckets
	// openMetrics writes OpenMetrics (the format Prometheus 3 asks for
	// first): exemplars on the bucket lines, counters' HELP and TYPE
	// without _total, floats with a ".0", integer counts as integers.
	openMetrics bool

	w   io.Writer // if set, full chunks of b are written to it (see spill)
	err error     // the first error writing to w
}

// appendText appends the text exposition of s's job metrics to b; it stops
// with ctx's error when ctx ends first.
func appendText(ctx context.Context, b []byte, s *state) ([]byte, error) {
	// Size the buffer up front: at 1,000 workflows the text is ~10 MB, and
	// growing it by doubling would copy it twice over.
	lines, labelBytes := 0, 0
	for k := range s.workflows {
		lines += 24 + 3*(len(s.runBuckets)+3) + len(s.queueBuckets) + 3
		labelBytes += len(k.name) + len(k.id)
	}
	if s.tasks != nil {
		for _, names := range s.tasks.series {
			lines += len(names) * 3 * (len(s.tasks.buckets) + 4)
		}
	}
	if len(s.workflows) > 0 {
		b = slices.Grow(b, lines*(110+labelBytes/len(s.workflows)))
	}
	t := &textEmitter{b: b, labels: map[workflowKey]string{}, dropClassic: s.dropClassic}
	d := &deadline{emitter: t, ctx: ctx}
	walk(s, d)
	return t.b, d.err
}

// textChunk is how much text writeText buffers before writing it on.
const textChunk = 64 << 10

// writeText writes the text exposition (or OpenMetrics, without its final
// "# EOF") of s's job metrics to w in chunks: gzipped as it is written, the
// whole text (10 MB and more at 1,000 workflows with tasks) never sits in
// memory at once.
func writeText(ctx context.Context, w io.Writer, s *state, openMetrics bool) error {
	t := &textEmitter{b: make([]byte, 0, textChunk+4096), labels: map[workflowKey]string{}, dropClassic: s.dropClassic, w: w,
		openMetrics: openMetrics}
	d := &deadline{emitter: t, ctx: ctx}
	walk(s, d)
	if d.err != nil {
		return d.err
	}
	if t.err == nil {
		_, t.err = w.Write(t.b)
	}
	return t.err
}

// spill writes the buffered text on once a chunk is full, when writing to w.
func (t *textEmitter) spill() {
	if t.w == nil || len(t.b) < textChunk || t.err != nil {
		return
	}
	_, t.err = t.w.Write(t.b)
	t.b = t.b[:0]
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	valueEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

// start writes the family's header before its first sample, then the
// sample's name and labels up to the closing brace (not written).
func (t *textEmitter) start(f *family, l series, suffix string) {
	if t.current != f {
		t.current = f
		name, help := f.name, helpEscaper.Replace(f.help)
		if t.openMetrics {
			help = valueEscaper.Replace(f.help)
			if f.typ == dto.MetricType_COUNTER {
				name = strings.TrimSuffix(name, "_total")
			}
		}
		t.b = append(t.b, "# HELP "+name+" "+help+"\n# TYPE "+name+" "+strings.ToLower(f.typ.String())+"\n"...)
	}
	w, ok := t.labels[l.key]
	if !ok {
		w = `workflow="` + valueEscaper.Replace(l.key.name) + `",workflow_id="` + valueEscaper.Replace(l.key.id) + `"`
		t.labels[l.key] = w
	}
	t.b = append(t.b, f.name...)
	t.b = append(t.b, suffix...)
	t.b = append(t.b, '{')
	if l.status != "" {
		t.b = append(t.b, `status="`+l.status+`",`...)
	}
	if l.task != "" {
		t.b = append(t.b, `task="`...)
		t.b = append(t.b, valueEscaper.Replace(l.task)...)
		t.b = append(t.b, `",`...)
	}
	t.b = append(t.b, w...)
}

func (t *textEmitter) value(f *family, l series, v float64) {
	t.start(f, l, "")
	t.b = append(t.b, "} "...)
	t.b = t.float(t.b, v)
	t.b = append(t.b, '\n')
	t.spill()
}

func (t *textEmitter) histogram(f *family, l series, h *histogram) {
	var acc uint64
	for i, bound := range h.bounds {
		if t.dropClassic {
			break
		}
		acc += h.counts[i]
		t.start(f, l, "_bucket")
		t.b = append(t.b, `,le="`...)
		t.b = t.float(t.b, bound)
		t.b = append(t.b, `"} `...)
		t.b = t.count(t.b, acc)
		t.exemplar(h, i)
		t.b = append(t.b, '\n')
	}
	t.start(f, l, "_bucket")
	t.b = append(t.b, `,le="+Inf"} `...)
	t.b = t.count(t.b, h.count)
	if !t.dropClassic {
		t.exemplar(h, len(h.bounds))
	}
	t.b = append(t.b, '\n')
	t.start(f, l, "_sum")
	t.b = append(t.b, "} "...)
	t.b = t.float(t.b, h.sum())
	t.b = append(t.b, '\n')
	t.start(f, l, "_count")
	t.b = append(t.b, "} "...)
	t.b = t.count(t.b, h.count)
	t.b = append(t.b, '\n')
	t.spill()
}

func (t *textEmitter) float(b []byte, v float64) []byte {
	if t.openMetrics {
		return appendOpenMetricsFloat(b, v)
	}
	return appendFloat(b, v)
}

// count formats a histogram's count: expfmt writes it as a float in text,
// as an integer in OpenMetrics.
func (t *textEmitter) count(b []byte, n uint64) []byte {
	if t.openMetrics {
		return strconv.AppendUint(b, n, 10)
	}
	return appendFloat(b, float64(n))
}

// exemplar writes bucket i's exemplar, in OpenMetrics, if it has one.
func (t *textEmitter) exemplar(h *histogram, i int) {
	if !t.openMetrics || h.exemplars == nil || h.exemplars[i].ref.id == 0 {
		return
	}
	e := h.exemplars[i]
	t.b = append(t.b, ` # {job_id="`...)
	t.b = strconv.AppendInt(t.b, e.ref.id, 10)
	t.b = append(t.b, `"} `...)
	t.b = appendOpenMetricsFloat(t.b, float64(e.ms)/1000)
	t.b = append(t.b, ' ')
	t.b = appendOpenMetricsFloat(t.b, float64(e.ref.at*int64(time.Millisecond))/1e9) // as expfmt converts the timestamp
}

// appendOpenMetricsFloat formats like expfmt's OpenMetrics writer: as
// appendFloat, with ".0" added to a number without "." or "e".
func appendOpenMetricsFloat(b []byte, f float64) []byte {
	n := len(b)
	b = appendFloat(b, f)
	if math.IsInf(f, 0) || math.IsNaN(f) || bytes.ContainsAny(b[n:], "e.") {
		return b
	}
	return append(b, '.', '0')
}

// appendFloat formats like expfmt: shortest representation, +Inf/-Inf/NaN.
func appendFloat(b []byte, f float64) []byte {
	switch {
	case math.IsInf(f, +1):
		return append(b, "+Inf"...)
	case math.IsInf(f, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(f):
		return append(b, "NaN"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}
