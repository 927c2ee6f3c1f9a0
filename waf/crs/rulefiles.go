package crs

import (
	"fmt"
	"os"
	"strings"

	"github.com/corazawaf/coraza/v3"
)

// Coraza's parser reports which directive failed but not where. When the
// configuration does not compile and extra rule files are involved, locate
// finds the first file that breaks it and, by bisecting over its directives,
// the line where the failing directive starts. It runs only on the error
// path, so the repeated compilations cost nothing in service.
func (e *Engine) locate(err error) error {
	if len(e.opts.RuleFiles) == 0 {
		return err
	}
	base := coraza.NewWAFConfig().WithRootFS(rootFS{}).WithDirectives(e.directives(""))
	compiles := func(cfg coraza.WAFConfig) bool {
		w, err := coraza.NewWAF(cfg)
		if err == nil {
			if c, ok := w.(interface{ Close() error }); ok {
				_ = c.Close()
			}
		}
		return err == nil
	}
	if !compiles(base) {
		return err
	}
	cfg := base
	for _, f := range e.opts.RuleFiles {
		if compiles(cfg.WithDirectivesFromFile(f)) {
			cfg = cfg.WithDirectivesFromFile(f)
			continue
		}
		src, rerr := os.ReadFile(f)
		if rerr != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		dirs := splitDirectives(string(src))
		// Smallest prefix of directives that fails: prefix lo compiles, hi fails.
		lo, hi := 0, len(dirs)
		if compiles(cfg.WithDirectives(joinDirectives(dirs))) {
			return fmt.Errorf("%s: %w", f, err)
		}
		for hi-lo > 1 {
			mid := (lo + hi) / 2
			if compiles(cfg.WithDirectives(joinDirectives(dirs[:mid]))) {
				lo = mid
			} else {
				hi = mid
			}
		}
		if hi == 0 {
			return fmt.Errorf("%s: %w", f, err)
		}
		return fmt.Errorf("%s:%d: %w", f, dirs[hi-1].line, err)
	}
	return err
}

type directive struct {
	text string
	line int // where it starts, 1-based
}

// splitDirectives cuts SecLang source into directives the way Coraza's
// parser reads it: comments and blank lines skipped, a trailing backslash
// continues a line, and a line ending in a backtick opens a block closed by a
// line starting with one.
func splitDirectives(src string) []directive {
	var (
		out   []directive
		cur   strings.Builder
		start int
		inBT  bool
	)
	for i, raw := range strings.Split(src, "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || (cur.Len() == 0 && !inBT && line[0] == '#') {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if !inBT && line[len(line)-1] == '`' {
			inBT = true
		} else if inBT && line[0] == '`' {
			inBT = false
		}
		if inBT {
			cur.WriteString(line + "\n")
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\"))
			continue
		}
		cur.WriteString(line)
		out = append(out, directive{cur.String(), start})
		cur.Reset()
	}
	if cur.Len() > 0 {
		out = append(out, directive{cur.String(), start})
	}
	return out
}

func joinDirectives(ds []directive) string {
	var b strings.Builder
	for _, d := range ds {
		// A backtick block must keep its newlines; other directives were
		// joined onto one line already.
		b.WriteString(d.text)
		b.WriteString("\n")
	}
	return b.String()
}
