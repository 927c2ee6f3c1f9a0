//go:build hedge_ftw

package crs

import "hedge/waf/ftw"

// testProfileBuilt marks a build for the CRS regression suite (go-ftw).
const testProfileBuilt = true

// testProfileDirectives is the go-ftw profile (see ftw.Profile); only a
// hedge_ftw build has it, because its marker rule bypasses every rule.
const testProfileDirectives = ftw.Profile
