package stream

import "time"

// RelayOptions tune pulls of streams published in another region.
type RelayOptions struct {
	// ReadyTimeout bounds how long a WHEP request waits for a stream's
	// first track (a relay being set up, a publisher about to send).
	// Default 5s.
	ReadyTimeout time.Duration
	// Grace keeps a pull running after its last local viewer leaves, so a
	// viewer who reloads finds it still there (default 10s).
	Grace time.Duration
	// MinBackoff and MaxBackoff bound the retries of a pull that broke
	// (defaults 250ms and 10s).
	MinBackoff, MaxBackoff time.Duration
}

func (o *RelayOptions) defaults() {
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 5 * time.Second
	}
	if o.Grace <= 0 {
		o.Grace = 10 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 250 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 10 * time.Second
	}
}

// relay pulls one stream from another region's edge into a local hub.
type relay struct{}

func (r *relay) stop() {}

// startRelay returns the hub of a stream pulled from its origin region, or
// nil when no other region publishes it.
func (s *Server) startRelay(stream string) *Hub {
	return nil
}

// viewerLeft lets the stream's relay, if any, count down to stopping.
func (s *Server) viewerLeft(stream string) {}
