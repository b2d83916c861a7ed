package collector

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"time"

	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
)

// Persistence (--persistence.file) keeps the synced state across restarts,
// so that counters never drop when Explorer purged jobs meanwhile, and a
// restart costs an incremental sync instead of the whole history.
//
// The file:
//
//	magic "NEBEXST\n" | format version (uint16, big endian)
//	| layout hash (8 bytes: the state's type, see typeLayout)
//	| config hash (8 bytes: buckets, limits, tasks, filters)
//	| Explorer URL (length, bytes) | written at (ms, varint) | last full sync (ms, varint)
//	| payload (the state, see persist_codec.go)
//	| SHA-256 of all the above
//
// It is written to a temporary file in the same directory, synced, renamed
// over the old one, and the directory synced: a crash leaves the old file
// or the new one, never a mix.
const (
	stateMagic  = "NEBEXST\n"
	stateFormat = 1
	// maxStateFile bounds what is read: the state is O(workflows + unfinished
	// jobs + the look-back's jobs), a few MB at most.
	maxStateFile = 256 << 20
)

// persistence is the collector's side of the state file.
type persistence struct {
	dirty     bool      // the state changed since the last write
	lastWrite time.Time // the last attempt, on c.now's clock
	lastOK    time.Time // the last success, real time; zero: none yet
	failed    bool      // the last attempt failed
	closed    bool      // Close wrote the last state; nothing more
}

// savedState is what a valid file holds.
type savedState struct {
	state    *state
	lastFull time.Time
}

// errBadState is a file refused for a reason its message names.
type errBadState struct{ reason string }

func (e errBadState) Error() string { return e.reason }

func badState(format string, args ...any) error { return errBadState{fmt.Sprintf(format, args...)} }

var (
	stateLayout     = typeLayout(reflect.TypeOf(state{}))
	stateLayoutHash = hash8(stateLayout)
)

func hash8(s string) [8]byte {
	sum := sha256.Sum256([]byte(s))
	return [8]byte(sum[:8])
}

// configHash binds the file to the options the state depends on: another
// set of buckets or limits makes the saved counts meaningless for this
// configuration.
func configHash(o Options) [8]byte {
	return hash8(fmt.Sprint(o.RunBuckets, o.QueueBuckets, o.TaskBuckets, o.Tasks.Enabled, o.MaxWorkflows,
		o.MaxLabelLength, o.Workflows.Include, o.Workflows.Exclude))
}

// encodeState returns the file's bytes for s.
func encodeState(o Options, s *state, lastFull, now time.Time) ([]byte, error) {
	e := &stateEncoder{b: append([]byte(nil), stateMagic...)}
	e.b = binary.BigEndian.AppendUint16(e.b, stateFormat)
	layout, config := stateLayoutHash, configHash(o)
	e.b = append(append(e.b, layout[:]...), config[:]...)
	e.uvarint(uint64(len(o.ExplorerURL)))
	e.b = append(e.b, o.ExplorerURL...)
	e.b = binary.AppendVarint(e.b, now.UnixMilli())
	e.b = binary.AppendVarint(e.b, lastFull.UnixMilli())
	if err := e.value(reflect.ValueOf(s).Elem()); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(e.b)
	return append(e.b, sum[:]...), nil
}

// decodeState checks a file's bytes against o and returns the state they
// hold, or an errBadState that says why not.
func decodeState(o Options, b []byte) (saved savedState, err error) {
	const header = len(stateMagic) + 2 + 8 + 8
	switch {
	case len(b) == 0:
		return saved, badState("the file is empty")
	case len(b) < len(stateMagic) || !bytes.Equal(b[:len(stateMagic)], []byte(stateMagic)):
		return saved, badState("not a state file of this exporter (no magic bytes)")
	case len(b) < header+sha256.Size:
		return saved, badState("truncated (%d bytes)", len(b))
	}
	if v := binary.BigEndian.Uint16(b[len(stateMagic):]); v != stateFormat {
		if v > stateFormat {
			return saved, badState("written by a newer exporter (format %d, this one reads %d)", v, stateFormat)
		}
		return saved, badState("of an older format (%d, this one reads %d)", v, stateFormat)
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if want := sha256.Sum256(body); !bytes.Equal(sum, want[:]) {
		return saved, badState("checksum mismatch: the file is corrupt or truncated")
	}
	if [8]byte(body[len(stateMagic)+2:]) != stateLayoutHash {
		return saved, badState("written by another version of the exporter (its state layout differs)")
	}
	if [8]byte(body[len(stateMagic)+10:]) != configHash(o) {
		return saved, badState("written with other histogram buckets, limits, task or workflow settings")
	}
	d := &stateDecoder{b: body[header:]}
	n, _, err := d.length(false)
	if err != nil {
		return saved, badState("undecodable: %v", err)
	}
	if url := string(d.b[:n]); url != o.ExplorerURL {
		return saved, badState("written for another Explorer URL")
	}
	d.b = d.b[n:]
	var writtenMs, lastFullMs int64
	for _, p := range []*int64{&writtenMs, &lastFullMs} {
		v, size := binary.Varint(d.b)
		if size <= 0 {
			return saved, badState("undecodable: %v", errShort)
		}
		*p, d.b = v, d.b[size:]
	}
	s, err := decodePayload(d.b)
	if err != nil {
		return saved, badState("undecodable: %v", err)
	}
	return savedState{state: s, lastFull: time.UnixMilli(lastFullMs)}, nil
}

// decodePayload decodes a state and checks what the code relies on.
func decodePayload(b []byte) (s *state, err error) {
	defer func() {
		if r := recover(); r != nil { // never crash on a file
			s, err = nil, fmt.Errorf("%v", r)
		}
	}()
	s = &state{}
	d := &stateDecoder{b: b}
	if err := d.value(reflect.ValueOf(s).Elem()); err != nil {
		return nil, err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%d bytes after the state", len(d.b))
	}
	if s.workflows == nil || s.unfinished == nil || s.finishedSince == nil {
		return nil, errors.New("a map of the state is missing")
	}
	if err := checkHistograms(reflect.ValueOf(s)); err != nil {
		return nil, err
	}
	return s, nil
}

// checkHistograms makes sure every histogram has a count per bucket, as
// observe relies on.
func checkHistograms(v reflect.Value) error {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			return checkHistograms(v.Elem())
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(histogram{}) {
			if v.FieldByName("counts").Len() != v.FieldByName("bounds").Len()+1 {
				return errors.New("a histogram's counts do not match its buckets")
			}
			return nil
		}
		for i := range v.NumField() {
			if err := checkHistograms(v.Field(i)); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if err := checkHistograms(v.Index(i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			if err := checkHistograms(it.Value()); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeFileAtomic replaces path with b: a temporary file in the same
// directory, synced, renamed over path, then the directory synced.
func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		return err
	}
	return nil
}

// loadState reads the state file at start. A missing file is a first start;
// a bad one is refused with one warning that names the reason, set aside as
// <file>.bad, and the exporter starts from a full sync.
func (c *Collector) loadState() {
	path := c.opts.PersistenceFile
	b, err := readStateFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		level.Info(c.logger).Log("msg", "no state file yet: the first sync reads the whole history", "file", path)
		return
	}
	var saved savedState
	if err == nil {
		saved, err = decodeState(c.opts, b)
	}
	if err != nil {
		keyvals := []any{"msg", "state file refused; starting from a full sync", "file", path, "reason", err}
		if rerr := os.Rename(path, path+".bad"); rerr == nil {
			keyvals = append(keyvals, "set_aside_as", path+".bad")
		} else {
			keyvals = append(keyvals, "set_aside", "failed: "+rerr.Error())
		}
		level.Warn(c.logger).Log(keyvals...)
		return
	}
	saved.state.dropClassic, saved.state.filter = c.opts.DropClassicBuckets, c.filter // the settings of now
	c.state, c.jobs, c.lastFull = saved.state, newExposition(saved.state), saved.lastFull
	level.Info(c.logger).Log("msg", "state loaded: the first sync is incremental", "file", path,
		"workflows", len(saved.state.workflows), "unfinished", len(saved.state.unfinished))
}

func readStateFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if fi.IsDir() {
		return nil, badState("it is a directory")
	} else if fi.Size() > maxStateFile {
		return nil, badState("larger than %d bytes", maxStateFile)
	}
	var b bytes.Buffer
	_, err = b.ReadFrom(f)
	return b.Bytes(), err
}

// saveState writes the state if it changed and the last write is at least
// PersistenceInterval old (or force, at Close).
func (c *Collector) saveState(force bool) {
	if c.opts.PersistenceFile == "" {
		return
	}
	c.persistMu.Lock() // one write at a time, in order
	defer c.persistMu.Unlock()
	c.mu.Lock()
	p := &c.persist
	now := c.now()
	due := p.dirty && !p.closed && (force || p.lastWrite.IsZero() || now.Sub(p.lastWrite) >= c.opts.PersistenceInterval)
	s, lastFull := c.state, c.lastFull
	if force {
		p.closed = true
	}
	if !due || s == nil {
		c.mu.Unlock()
		return
	}
	p.dirty, p.lastWrite = false, now
	c.mu.Unlock()

	b, err := encodeState(c.opts, s, lastFull, time.Now())
	if err == nil {
		err = writeFileAtomic(c.opts.PersistenceFile, b)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p.failed = err != nil
	if err != nil {
		p.dirty = true // try again after the next sync
		level.Error(c.logger).Log("msg", "writing the state file failed", "file", c.opts.PersistenceFile, "err", err)
		return
	}
	p.lastOK = time.Now()
	level.Debug(c.logger).Log("msg", "state file written", "file", c.opts.PersistenceFile, "bytes", len(b))
}

// Close writes the state file one last time, if the state changed since it
// was last written; call it at shutdown (SIGTERM). The collector serves on,
// but writes no more.
func (c *Collector) Close() {
	c.saveState(true)
}

// Inherit makes c, which replaces prev after a configuration reload, keep
// prev's counters: its first full sync keeps every counter and histogram at
// least at prev's values, as across syncs, when both talk to the same
// Explorer with the same buckets and limits. prev writes the state file no
// more; c does.
func (c *Collector) Inherit(prev *Collector) {
	if prev == nil || prev == c {
		return
	}
	prev.mu.Lock()
	s, opts := prev.state, prev.opts
	if s == nil {
		s = prev.inherited // reloaded again before its first sync
	}
	prev.persist.closed = true
	prev.mu.Unlock()
	if s == nil || opts.ExplorerURL != c.opts.ExplorerURL || configHash(opts) != configHash(c.opts) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inherited = s
}

var (
	persistLastWriteDesc = desc("persistence_last_write_timestamp_seconds", "When the state file (--persistence.file) was last written successfully, as a Unix timestamp in seconds.")
	persistSuccessDesc   = desc("persistence_last_write_success", "1 unless the last attempt to write the state file (--persistence.file) failed.")
)

// persistHealth is the state file's health, as metrics (only with --persistence.file).
type persistHealth persistence

func (p persistHealth) Describe(ch chan<- *prometheus.Desc) {
	ch <- persistLastWriteDesc
	ch <- persistSuccessDesc
}

func (p persistHealth) Collect(ch chan<- prometheus.Metric) {
	if !p.lastOK.IsZero() {
		ch <- prometheus.MustNewConstMetric(persistLastWriteDesc, prometheus.GaugeValue, float64(p.lastOK.UnixNano())/1e9)
	}
	ok := 1.0
	if p.failed {
		ok = 0
	}
	ch <- prometheus.MustNewConstMetric(persistSuccessDesc, prometheus.GaugeValue, ok)
}
