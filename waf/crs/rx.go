//go:build !re2_cgo

package crs

// regexEngine names the @rx implementation in Info: without the re2_cgo tag
// hedge keeps Coraza's own operator (Go's regexp).
const regexEngine = "go regexp"
