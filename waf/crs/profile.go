//go:build !hedge_ftw

package crs

// testProfileBuilt is false in every build without the hedge_ftw tag: the
// go-ftw marker rule bypasses every other rule, so production binaries cannot
// contain it at all.
const testProfileBuilt = false

const testProfileDirectives = ""
