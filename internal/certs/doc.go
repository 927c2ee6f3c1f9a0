// Package certs gives each edge listener its TLS: certificates and the
// server-side TLS policy, chosen by the listener's tls.mode.
//
//   - internal: a local CA, created once in the data directory and reused
//     across restarts, signs short-lived leaf certificates that certmagic
//     stores and renews. For development, the demo and private networks;
//     clients trust it by importing RootPath().
//   - acme: certmagic obtains and renews certificates from an ACME CA
//     (Let's Encrypt in production, Pebble in tests) through the http-01
//     and/or tls-alpn-01 challenges.
//   - files: operator-supplied PEM files, read when the Manager is built;
//     a reload builds a new Manager and so reads them again.
//   - off: no TLS; TLSConfig returns nil.
//
// Every listener gets its own Manager, and every Manager its own certmagic
// Config and Cache (never certmagic's package-level Default), so listeners
// with different modes or names never see each other's certificates and a
// reload can build a complete new Manager before the old one is closed.
// Managers that share a data directory share certmagic's storage, whose
// locks keep them from obtaining the same certificate twice.
//
// The TLS policy is the same for every mode: TLS 1.2 or 1.3, only AEAD
// cipher suites with ECDHE for 1.2, and X25519 (with its ML-KEM hybrid) or
// P-256 for key exchange. Money moves over these connections, so nothing
// that a current client does not need is offered.
package certs
