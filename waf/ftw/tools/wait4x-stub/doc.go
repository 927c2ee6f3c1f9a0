// Package wait4x is a local stand-in for wait4x.dev/v3, which the Go module
// proxy used by hedge's machines refuses to serve. go-ftw imports it only for
// its --wait-for-host option; this stub implements exactly the API go-ftw
// v2.1.0 calls (an HTTP checker and a parallel waiter), with a plain net/http
// probe behind it. hedge's conformance test does not use --wait-for-host: it
// waits for the server itself before starting go-ftw.
package wait4x
