// Package stream will relay live-dealer video: WHIP ingest, WHEP playback,
// inter-region relay and LL-HLS packaging around one hub per table. Not
// built yet; see the README's roadmap.
package stream
