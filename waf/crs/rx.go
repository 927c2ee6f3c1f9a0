//go:build !re2_cgo

package crs

// regexEngine names the @rx implementation in Info: without the re2_cgo tag
// hedge's operator (rxop.go) runs Go's regexp, as Coraza's own does.
const regexEngine = "go regexp"

func compile(expr string, binary bool) (matcher, error) { return compileGo(expr, binary) }
