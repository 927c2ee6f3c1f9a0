package sim

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"hedge/internal/httpx"
)

// RailSettings configures a Rail.
type RailSettings struct {
	Name   string       // reported in every deposit, so a test sees which rail took it; empty means "rail"
	Logger *slog.Logger // may be nil
}

// Rail is a simulated payment provider. It starts healthy; SetHealthy or
// POST /admin/health turns it down and up so the gateway's rail switching
// can be driven from a test or a drill. It is safe for concurrent use.
type Rail struct {
	name    string
	log     *slog.Logger
	*server // Handler, Serve, Close

	// delay holds every deposit answer back, after the deposit is booked:
	// a slow rail whose outcome the edge cannot know when it times out.
	delay atomic.Int64

	mu       sync.Mutex
	healthy  bool
	seq      int64
	deposits map[scope]*depositSlot
}

type depositSlot struct {
	resp  depositResponse
	count int // times the key arrived; booked once
}

// Deposit is one Idempotency-Key a rail booked a deposit for, and how many
// times the key arrived (the deposit was booked once however large Count
// is). A test that proves a deposit was booked once across rails sums the
// rails' lists.
type Deposit struct {
	Key     string `json:"key"`
	Account string `json:"account"`
	ID      string `json:"deposit_id"`
	Count   int    `json:"count"`
}

type depositResponse struct {
	Rail           string `json:"rail"`
	DepositID      string `json:"deposit_id"`
	IdempotencyKey string `json:"idempotency_key"`
}

// NewRail returns a healthy Rail configured by s.
func NewRail(s RailSettings) *Rail {
	if s.Name == "" {
		s.Name = "rail"
	}
	r := &Rail{
		name:     s.Name,
		log:      orDiscard(s.Logger).With("component", "railsim", "rail", s.Name),
		healthy:  true,
		deposits: make(map[scope]*depositSlot),
	}
	r.server = newServer(http.HandlerFunc(r.route), r.log)
	return r
}

// SetHealthy turns the rail up (deposits succeed, /healthz is 200) or down
// (both answer 503).
func (r *Rail) SetHealthy(ok bool) {
	r.mu.Lock()
	changed := r.healthy != ok
	r.healthy = ok
	r.mu.Unlock()
	if changed {
		r.log.Info("rail health changed", "healthy", ok)
	}
}

func (r *Rail) isHealthy() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.healthy
}

func (r *Rail) route(w http.ResponseWriter, req *http.Request) {
	switch p := req.URL.Path; {
	// The gateway forwards the path the client used (/cashier/deposit and
	// friends), so any cashier path is a deposit here.
	case p == "/deposit" || strings.HasPrefix(p, "/cashier/"):
		if allow(w, req, http.MethodPost) {
			r.deposit(w, req)
		}
	case p == "/healthz":
		if allow(w, req, http.MethodGet, http.MethodHead) {
			if r.isHealthy() {
				writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
			} else {
				r.unavailable(w)
			}
		}
	case p == "/deposits":
		if allow(w, req, http.MethodGet, http.MethodHead) {
			writeJSON(w, http.StatusOK, struct {
				Deposits []Deposit `json:"deposits"`
			}{r.Deposits()})
		}
	case p == "/admin/health":
		if allow(w, req, http.MethodPost) {
			r.setHealth(w, req)
		}
	case p == "/admin/faults":
		if allow(w, req, http.MethodPost) {
			r.setFaults(w, req)
		}
	default:
		writeProblem(w, http.StatusNotFound, "not-found", "Not found", "no such endpoint: "+p)
	}
}

func (r *Rail) deposit(w http.ResponseWriter, req *http.Request) {
	// The body is not inspected, but reading it lets the connection be
	// reused, and the limit keeps a stand-in from buffering anything huge.
	_, _ = io.Copy(io.Discard, http.MaxBytesReader(w, req.Body, maxBodyLen))
	account, status, slug, detail := principalOf(req)
	if status != 0 {
		writeProblem(w, status, slug, "Principal missing or malformed", detail)
		return
	}
	key, err := idempotencyKey(req)
	if err != nil && !errors.Is(err, httpx.ErrIdempotencyKeyMissing) {
		writeProblem(w, http.StatusBadRequest, "malformed-idempotency-key", "Idempotency-Key malformed", err.Error())
		return
	}
	sc := scope{account: account, key: key}

	r.mu.Lock()
	if !r.healthy {
		r.mu.Unlock()
		r.unavailable(w)
		return
	}
	if key != "" {
		if slot, ok := r.deposits[sc]; ok {
			slot.count++
			resp := slot.resp
			r.mu.Unlock()
			r.slow()
			w.Header().Set("Idempotent-Replayed", "true")
			writeJSON(w, http.StatusOK, resp)
			return
		}
	}
	r.seq++
	resp := depositResponse{
		Rail:           r.name,
		DepositID:      fmt.Sprintf("%s-dep-%06d", r.name, r.seq),
		IdempotencyKey: key,
	}
	// Without a key nothing can be replayed, so there is nothing to keep.
	if key != "" {
		r.deposits[sc] = &depositSlot{resp: resp, count: 1}
	}
	r.mu.Unlock()

	r.log.Debug("deposit accepted", "deposit_id", resp.DepositID, "path", req.URL.Path)
	r.slow()
	writeJSON(w, http.StatusOK, resp)
}

// slow waits out the delay set by SetDelay, after the deposit is booked
// (or found), before the answer.
func (r *Rail) slow() {
	if d := time.Duration(r.delay.Load()); d > 0 {
		time.Sleep(d)
	}
}

// Deposits lists the keyed deposits the rail booked, sorted by key and
// account.
func (r *Rail) Deposits() []Deposit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return byScope(r.deposits, func(sc scope, slot *depositSlot) Deposit {
		return Deposit{Key: sc.key, Account: sc.account, ID: slot.resp.DepositID, Count: slot.count}
	})
}

// SetDelay makes the rail answer every deposit d late, after booking it.
func (r *Rail) SetDelay(d time.Duration) { r.delay.Store(int64(d)) }

// setFaults is POST /admin/faults {"delay":"2s"}.
func (r *Rail) setFaults(w http.ResponseWriter, req *http.Request) {
	var body struct {
		Delay *string `json:"delay"`
	}
	if !readBody(w, req, &body) {
		return
	}
	if !setDelay(w, body.Delay, r.SetDelay) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"rail": r.name, "delay": time.Duration(r.delay.Load()).String()})
}

func (r *Rail) setHealth(w http.ResponseWriter, req *http.Request) {
	var body struct {
		Healthy *bool `json:"healthy"`
	}
	if !readBody(w, req, &body) {
		return
	}
	if body.Healthy == nil {
		writeProblem(w, http.StatusUnprocessableEntity, "missing-field", "Missing field",
			`want {"healthy": true} or {"healthy": false}`)
		return
	}
	r.SetHealthy(*body.Healthy)
	writeJSON(w, http.StatusOK, map[string]any{"rail": r.name, "healthy": *body.Healthy})
}

func (r *Rail) unavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	writeProblem(w, http.StatusServiceUnavailable, "rail-unavailable", "Payment rail unavailable",
		fmt.Sprintf("rail %q is down; use another rail or retry with the same Idempotency-Key", r.name))
}
