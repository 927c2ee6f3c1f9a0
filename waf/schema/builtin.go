package schema

import "embed"

// Builtin holds the schemas hedge ships, in schemas/NAME.json; a
// configuration names one as "builtin:NAME" (see Load).
//
//go:embed schemas/*.json
var Builtin embed.FS
