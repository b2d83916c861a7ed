package collector

// maxFilterCache bounds the decisions remembered by name; past it, the
// cache starts over (renames and odd names cannot grow it without bound).
const maxFilterCache = 10_000

// nameFilter applies Options.Workflows to workflow names, remembering each
// decision: the anchored regexps run once per name, not once per job.
// Syncs are sequential (a parallel sync observes under its lock), so it
// needs no lock of its own.
type nameFilter struct {
	WorkflowFilter
	decided map[string]bool
}

func newNameFilter(f WorkflowFilter) *nameFilter {
	if len(f.Include) == 0 && len(f.Exclude) == 0 {
		return nil // keeps every workflow
	}
	return &nameFilter{WorkflowFilter: f, decided: map[string]bool{}}
}

// keeps reports whether the workflow named name is exported: it matches an
// Include pattern (or there is none) and no Exclude pattern.
func (f *nameFilter) keeps(name string) bool {
	if f == nil {
		return true
	}
	if keep, ok := f.decided[name]; ok {
		return keep
	}
	keep := len(f.Include) == 0
	for _, re := range f.Include {
		if re.MatchString(name) {
			keep = true
			break
		}
	}
	for _, re := range f.Exclude {
		if keep && re.MatchString(name) {
			keep = false
		}
	}
	if len(f.decided) >= maxFilterCache {
		clear(f.decided)
	}
	f.decided[name] = keep
	return keep
}
