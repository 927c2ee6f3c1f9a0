//go:build re2_cgo

package crs

import (
	re2 "github.com/wasilibs/go-re2"
	re2x "github.com/wasilibs/go-re2/experimental"
)

// regexEngine names the @rx implementation in Info.
const regexEngine = "re2"

// compile runs CRS's regular expressions on RE2 (C++, through cgo) instead
// of Go's regexp, which dominates Coraza's CPU time: RE2's Latin-1 mode for
// byte patterns, UTF-8 otherwise. The split is hedge's (matchesBytes): it
// decodes CRS v4's \x{bc} form, which the wasilibs plugin misses so that
// rule 941310 stops matching there.
func compile(expr string, binary bool) (matcher, error) {
	if binary {
		return re2x.CompileLatin1(expr)
	}
	return re2.Compile(expr)
}
