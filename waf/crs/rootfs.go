package crs

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
)

// rootFS is what the SecLang parser reads from: the embedded Core Rule Set
// for its own names (@coraza.conf-recommended, @crs-setup.conf.example,
// @owasp_crs/...) and the operator's file system for extra rule files. Its
// type also marks a WAF as hedge's, so the @rx operator knows whose rules it
// compiles (see rx.go).
type rootFS struct{}

// crsName returns the embedded name inside p, if p refers to the CRS. The
// parser joins includes with the including file's directory, so a CRS name
// may arrive with a prefix.
func crsName(p string) (string, bool) {
	for _, n := range []string{"@owasp_crs/", "@coraza.conf-recommended", "@crs-setup.conf.example"} {
		if i := strings.Index(p, n); i >= 0 && (i == 0 || p[i-1] == '/') {
			return p[i:], true
		}
	}
	return "", false
}

func (rootFS) Open(name string) (fs.File, error) {
	if n, ok := crsName(name); ok {
		return coreruleset.FS.Open(n)
	}
	return os.Open(name)
}

func (rootFS) ReadFile(name string) ([]byte, error) {
	if n, ok := crsName(name); ok {
		return fs.ReadFile(coreruleset.FS, n)
	}
	return os.ReadFile(name)
}

func (rootFS) Glob(pattern string) ([]string, error) {
	if n, ok := crsName(pattern); ok {
		return fs.Glob(coreruleset.FS, n)
	}
	return filepath.Glob(pattern)
}
