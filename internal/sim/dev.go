package sim

import (
	"errors"
	"fmt"
	"log/slog"
	"net"

	"hedge/configs"
)

// Dev is the development stand-ins a configuration's dev section asks
// for (the demo's ledger simulators and payment rails), served in the
// process that reads it.
type Dev struct {
	stops []func() error
}

// StartDev serves every stand-in of d. On error, those already started
// are stopped again.
func StartDev(d configs.Dev, log *slog.Logger) (*Dev, error) {
	dev := &Dev{}
	for _, l := range d.Ledgers {
		s := LedgerSettings{Domain: l.Domain, Role: string(l.Role), Epoch: l.Epoch, Logger: log.With("sim", "ledger", "domain", l.Domain)}
		if err := s.Validate(); err != nil {
			dev.Close()
			return nil, fmt.Errorf("dev ledger %s: %w", l.Address, err)
		}
		led := NewLedger(s)
		if err := dev.serve(l.Address, led.Serve, led.Close); err != nil {
			dev.Close()
			return nil, fmt.Errorf("dev ledger %s: %w", l.Address, err)
		}
		log.Info("ledger simulator serving", "address", l.Address, "domain", l.Domain, "role", l.Role, "epoch", l.Epoch)
	}
	for _, r := range d.Rails {
		rail := NewRail(RailSettings{Name: r.Name, Logger: log.With("sim", "rail", "rail", r.Name)})
		if err := dev.serve(r.Address, rail.Serve, rail.Close); err != nil {
			dev.Close()
			return nil, fmt.Errorf("dev rail %s: %w", r.Name, err)
		}
		log.Info("payment rail simulator serving", "address", r.Address, "rail", r.Name)
	}
	return dev, nil
}

func (d *Dev) serve(addr string, serve func(net.Listener) error, stop func() error) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	go serve(ln)
	d.stops = append(d.stops, stop)
	return nil
}

// Close stops every stand-in; it is safe to call more than once.
func (d *Dev) Close() error {
	var errs []error
	for i := len(d.stops) - 1; i >= 0; i-- {
		errs = append(errs, d.stops[i]())
	}
	d.stops = nil
	return errors.Join(errs...)
}
