// Package dnsfail will serve hedge's authoritative, health-aware DNS:
// service names answered with the edges of healthy regions, probed with
// hedge/gateway/health. Not built yet; see the README's roadmap.
package dnsfail
