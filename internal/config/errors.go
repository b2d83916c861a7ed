package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// yaml.v3 decides what is accepted; its messages, though, name Go types
// ("field passwd not found in type config.plain") and lose the line of an
// UnmarshalYAML error (a bad duration). So when the strict decode fails,
// decodeError walks the node tree against Config's type and says, per line,
// which dotted field is wrong and why.

var (
	yamlLine  = regexp.MustCompile(`^line (\d+): `)
	goType    = regexp.MustCompile(` (?:into|in type) [\w.*\[\]]+`)
	yamlValue = regexp.MustCompile("(?: `[^`]*`)+")
)

// syntaxError rewrites a parse error of data: "yaml: line 3: mapping values
// are not allowed in this context" becomes "line 3: invalid YAML: mapping
// values ...". yaml.v3's own line is often early: it names the start of
// the construct being parsed, and counts parser errors from 0. So the line
// given is the first at which the file stops being valid: the shortest run
// of leading lines that fails with the same message. The search starts at
// yaml.v3's line and gallops, so it parses a few prefixes, not the file's
// every line.
func syntaxError(data []byte, err error) error {
	raw := strings.TrimPrefix(err.Error(), "yaml: ")
	msg := yamlLine.ReplaceAllString(raw, "")
	lines := bytes.SplitAfter(data, []byte("\n"))
	fails := func(k int) bool { // the first k lines fail as the file does
		err := parseAll(bytes.Join(lines[:k], nil))
		return err != nil && yamlLine.ReplaceAllString(strings.TrimPrefix(err.Error(), "yaml: "), "") == msg
	}
	lo := 0 // fails(lo) is false
	if m := yamlLine.FindStringSubmatch(raw); m != nil {
		n, _ := strconv.Atoi(m[1])
		lo = min(max(n-2, 0), len(lines)-1)
	}
	hi := lo + 1 // fails(hi) is true, or hi is the whole file
	for step := 1; hi < len(lines) && !fails(hi); step *= 2 {
		lo, hi = hi, min(hi+step, len(lines))
	}
	k := lo + 1 + sort.Search(hi-lo-1, func(i int) bool { return fails(lo + 1 + i) })
	if k == len(lines) && !fails(k) { // not found again: keep yaml.v3's word
		if m := yamlLine.FindString(raw); m != "" {
			return errors.New(m + "invalid YAML: " + raw[len(m):])
		}
		return errors.New("invalid YAML: " + raw)
	}
	return fmt.Errorf("line %d: invalid YAML: %s", k, msg)
}

// parseAll parses every YAML document in data, as decode does, and returns
// the first syntax error.
func parseAll(data []byte) error {
	d := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		switch err := d.Decode(&n); {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return err
		}
	}
}

// maxIssues bounds the problems one error lists, whatever the file holds.
const maxIssues = 20

// decodeError describes why the strict decode of doc failed.
func decodeError(doc *yaml.Node, err error) error {
	w := walker{active: map[*yaml.Node]bool{}, walked: map[walkKey]bool{}, reported: map[string]bool{}}
	if len(doc.Content) == 1 {
		w.mapping(doc.Content[0], reflect.TypeFor[Config](), "", false)
	}
	if len(w.issues) == 0 {
		w.issues = []string{cleanYAML(err)} // a case the walk does not foresee
	}
	if len(w.issues) > maxIssues {
		w.issues = append(w.issues[:maxIssues], fmt.Sprintf("and %d more problems", len(w.issues)-maxIssues))
	}
	return errors.New(strings.Join(w.issues, "; "))
}

// cleanYAML keeps yaml.v3's own words, without Go type names or quoted
// values (which could be a password).
func cleanYAML(err error) string {
	s := strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n  ")
	s = strings.TrimPrefix(s, "yaml: ")
	s = goType.ReplaceAllString(s, "")
	s = yamlValue.ReplaceAllString(s, "")
	return strings.ReplaceAll(s, "\n  ", "; ")
}

// The walker visits each mapping once per dotted path, and says each
// problem once: aliases and merges can name one mapping many times over (a
// "billion laughs" of a few hundred bytes), which must cost no more to walk
// than the file is long.
type walker struct {
	issues   []string
	active   map[*yaml.Node]bool // mappings being walked, against merge loops
	walked   map[walkKey]bool    // mappings already walked at a path
	reported map[string]bool     // issues already listed
}

type walkKey struct {
	n    *yaml.Node
	path string
}

func (w *walker) addf(n *yaml.Node, path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	msg = fmt.Sprintf("line %d: %s", n.Line, msg)
	if !w.reported[msg] {
		w.reported[msg] = true
		w.issues = append(w.issues, msg)
	}
}

// checksItself says whether *t has its own UnmarshalYAML, which may refuse
// what the walk accepts (TLSConfig wants ca or ca_file, not both).
func checksItself(t reflect.Type) bool {
	type obsoleteUnmarshaler interface{ UnmarshalYAML(func(any) error) error }
	p := reflect.PointerTo(t)
	return p.Implements(reflect.TypeFor[yaml.Unmarshaler]()) || p.Implements(reflect.TypeFor[obsoleteUnmarshaler]())
}

// mapping walks n, which is to decode into the struct type t; merged says
// that n is merged into the mapping at path rather than its value.
func (w *walker) mapping(n *yaml.Node, t reflect.Type, path string, merged bool) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		if path == "" {
			w.addf(n, "", "the file must be a mapping with the sections explorer, sync, tasks, workflows, limits and metrics, got %s", describe(n, true))
		} else {
			w.addf(n, path, "must be a mapping of keys, got %s", describe(n, true))
		}
		return
	}
	if w.active[n] {
		w.addf(n, path, "a merge (<<) includes the mapping it is in")
		return
	}
	key := walkKey{n, path}
	if w.walked[key] {
		return // its problems are listed already
	}
	w.walked[key] = true
	w.active[n] = true
	defer delete(w.active, n)

	before := len(w.issues)
	fields := yamlFields(t)
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			w.addf(k, path, "keys must be plain words, got %s", describe(k, false))
			continue
		}
		if line, dup := seen[k.Value]; dup {
			w.addf(k, "", "key %s appears twice %s (first on line %d)", describe(k, true), where(path), line)
			continue
		}
		seen[k.Value] = k.Line
		if k.ShortTag() == "!!merge" {
			w.merge(v, t, path)
			continue
		}
		f, ok := fields[k.Value]
		if !ok {
			w.addf(k, "", "unknown key %s %s", describe(k, true), where(path))
			continue
		}
		sub := k.Value
		if path != "" {
			sub = path + "." + k.Value
		}
		if f.Type.Kind() == reflect.Struct {
			w.mapping(v, f.Type, sub, false)
		} else {
			w.leaf(v, f.Type, sub)
		}
	}
	if len(w.issues) == before && !merged && checksItself(t) {
		// The type's own UnmarshalYAML may refuse what it got. Asked once
		// per path, of the mapping with the merges in it, whose decode
		// yaml.v3 bounds (it refuses excessive aliasing).
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			w.addf(n, path, "%s", cleanYAML(err))
		}
	}
}

// where names the section a key is in.
func where(path string) string {
	if path == "" {
		return "at the top level"
	}
	return "in " + path
}

// merge walks the value of a merge key (<<): a mapping or a list of them.
func (w *walker) merge(v *yaml.Node, t reflect.Type, path string) {
	v = resolve(v)
	if v.Kind == yaml.SequenceNode {
		for _, m := range v.Content {
			if m = resolve(m); m.Kind != yaml.MappingNode {
				w.addf(m, path, "a merge (<<) must name mappings, got %s", describe(m, true))
				continue
			}
			w.mapping(m, t, path, true)
		}
		return
	}
	if v.Kind != yaml.MappingNode {
		w.addf(v, path, "a merge (<<) must name a mapping, got %s", describe(v, true))
		return
	}
	w.mapping(v, t, path, true)
}

var (
	durationType   = reflect.TypeFor[model.Duration]()
	tlsVersionType = reflect.TypeFor[promconfig.TLSVersion]()
	secretType     = reflect.TypeFor[promconfig.Secret]()
)

// leaf checks a value that is not a section.
func (w *walker) leaf(v *yaml.Node, t reflect.Type, path string) {
	n := resolve(v)
	if isNull(n) {
		return // yaml.v3 leaves the field as it is
	}
	if t.Kind() == reflect.Slice {
		if n.Kind != yaml.SequenceNode {
			w.addf(n, path, "must be a list, got %s", describe(n, true))
			return
		}
		for i, e := range n.Content {
			w.leaf(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
		return
	}
	if err := n.Decode(reflect.New(t).Interface()); err == nil {
		return
	}
	// Strings, the password above all, are never quoted back.
	got := describe(n, t.Kind() != reflect.String)
	switch {
	case t == durationType:
		w.addf(n, path, "must be a duration such as 30s, 5m or 1h30m, got %s", got)
	case t == tlsVersionType:
		w.addf(n, path, "must be TLS10, TLS11, TLS12 or TLS13, got %s", got)
	case t == secretType, t.Kind() == reflect.String:
		w.addf(n, path, "must be a string, got %s", got)
	case t.Kind() == reflect.Bool:
		w.addf(n, path, "must be true or false, got %s", got)
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		w.addf(n, path, "must be a whole number, got %s", got)
	case t.Kind() == reflect.Float64 || t.Kind() == reflect.Float32:
		w.addf(n, path, "must be a number, got %s", got)
	default:
		w.addf(n, path, "invalid value %s", got)
	}
}

// describe names what a node holds; quote says whether a scalar's value may
// be shown.
func describe(n *yaml.Node, quote bool) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	if !quote {
		return "a value tagged " + n.ShortTag()
	}
	v := n.Value
	if r := []rune(v); len(r) > 40 {
		v = string(r[:37]) + "..."
	}
	return fmt.Sprintf("%q", v)
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// yamlFields maps the yaml keys of struct type t to its fields.
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	fields := map[string]reflect.StructField{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f
	}
	return fields
}
