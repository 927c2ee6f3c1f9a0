package gateway

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"hedge/gateway/ledger"
	"hedge/gateway/problem"
)

// promotions are operators' requests to designate a writer. One operator
// asks, a different one approves within the window (four eyes); only then
// does the designation change, on every node of this process, with an audit
// record for each step.
type promotions struct {
	mu      sync.Mutex
	pending map[string]*Promotion
}

// Promotion is one request to designate a writer.
type Promotion struct {
	ID          string        `json:"id"`
	Writer      ledger.Writer `json:"writer"`
	Reason      string        `json:"reason"`
	RequestedBy string        `json:"requested_by"`
	RequestedAt time.Time     `json:"requested_at"`
	Expires     time.Time     `json:"expires"`
	ApprovedBy  string        `json:"approved_by,omitempty"`
	Status      string        `json:"status"` // pending | applied | rejected | expired
	Result      string        `json:"result,omitempty"`
}

// operator names the admin token a request used, without revealing it.
// Loopback callers without a token have no identity and cannot take part.
func (n *Node) operator(r *http.Request) (string, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return "", false
	}
	for _, t := range n.state.Load().cfg.Admin.Tokens {
		if subtle.ConstantTimeCompare([]byte(tok), []byte(t)) == 1 {
			sum := sha256.Sum256([]byte(t))
			return "operator-" + hex.EncodeToString(sum[:4]), true
		}
	}
	return "", false
}

func (n *Node) registerPromotionAPI(mux *http.ServeMux) {
	mux.HandleFunc("GET /admin/ledger/promotions", func(w http.ResponseWriter, r *http.Request) {
		p := &n.g.promotions
		p.mu.Lock()
		list := make([]Promotion, 0, len(p.pending))
		for _, pr := range p.pending {
			list = append(list, *pr)
		}
		p.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"promotions": list})
	})
	mux.HandleFunc("POST /admin/ledger/promotions", n.requestPromotion)
	mux.HandleFunc("POST /admin/ledger/promotions/{id}/approve", n.approvePromotion)
}

func (n *Node) requestPromotion(w http.ResponseWriter, r *http.Request) {
	who, ok := n.operator(r)
	if !ok {
		writeProblem(w, r, problem.Forbidden, "promotions need an operator's admin token, even from loopback")
		return
	}
	var body struct {
		Domain string `json:"domain"`
		URL    string `json:"url"`
		Epoch  int64  `json:"epoch"`
		Reason string `json:"reason"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&body); err != nil {
		writeProblem(w, r, problem.BadRequest, "body: "+err.Error())
		return
	}
	if body.Domain == "" || body.URL == "" || body.Epoch <= 0 || strings.TrimSpace(body.Reason) == "" {
		writeProblem(w, r, problem.UnprocessableInput, "domain, url, a positive epoch and a reason are required")
		return
	}
	st := n.state.Load()
	cur := st.directory.Lookup(body.Domain)
	switch {
	case cur == nil:
		writeProblem(w, r, problem.UnprocessableInput, "no ledger domain "+body.Domain)
		return
	case cur.OK() && body.Epoch <= cur.Writer.Epoch:
		writeProblem(w, r, problem.UnprocessableInput, fmt.Sprintf("epoch %d is not higher than the current writer's %d", body.Epoch, cur.Writer.Epoch))
		return
	}
	var id [8]byte
	rand.Read(id[:])
	now := time.Now()
	pr := &Promotion{ID: hex.EncodeToString(id[:]), Writer: ledger.Writer{Domain: body.Domain, URL: body.URL, Epoch: body.Epoch},
		Reason: body.Reason, RequestedBy: who, RequestedAt: now, Expires: now.Add(st.cfg.Ledger.Promotion.Window.D()), Status: "pending"}
	p := &n.g.promotions
	p.mu.Lock()
	if p.pending == nil {
		p.pending = map[string]*Promotion{}
	}
	p.pending[pr.ID] = pr
	p.mu.Unlock()
	n.log.Warn("writer promotion requested", "id", pr.ID, "domain", body.Domain, "writer", body.URL, "epoch", body.Epoch, "by", who, "reason", body.Reason)
	n.g.audit.Record("ledger_promotion_requested", map[string]any{"id": pr.ID, "writer": pr.Writer, "by": who, "reason": pr.Reason, "expires": pr.Expires})
	writeJSON(w, http.StatusAccepted, pr)
}

func (n *Node) approvePromotion(w http.ResponseWriter, r *http.Request) {
	who, ok := n.operator(r)
	if !ok {
		writeProblem(w, r, problem.Forbidden, "promotions need an operator's admin token, even from loopback")
		return
	}
	p := &n.g.promotions
	p.mu.Lock()
	defer p.mu.Unlock()
	pr := p.pending[r.PathValue("id")]
	switch {
	case pr == nil:
		writeProblem(w, r, problem.NotFound, "no such promotion")
		return
	case pr.Status != "pending":
		writeProblem(w, r, problem.UnprocessableInput, "this promotion is "+pr.Status)
		return
	case time.Now().After(pr.Expires):
		pr.Status = "expired"
		n.g.audit.Record("ledger_promotion_expired", map[string]any{"id": pr.ID, "writer": pr.Writer})
		writeProblem(w, r, problem.UnprocessableInput, "this promotion expired; request it again")
		return
	case who == pr.RequestedBy:
		writeProblem(w, r, problem.Forbidden, "four eyes: a different operator must approve")
		return
	}
	pr.ApprovedBy = who
	var des ledger.Designation
	var err error
	for _, node := range n.g.nodes {
		if des, err = node.state.Load().directory.Promote(pr.Writer); err != nil {
			break
		}
	}
	if err != nil {
		pr.Status, pr.Result = "rejected", err.Error()
		n.g.audit.Record("ledger_promotion_rejected", map[string]any{"id": pr.ID, "writer": pr.Writer, "approved_by": who, "error": err.Error()})
		writeProblem(w, r, problem.UnprocessableInput, "promotion rejected: "+err.Error())
		return
	}
	pr.Status, pr.Result = "applied", string(des.State)
	n.log.Warn("writer promotion applied", "id", pr.ID, "domain", pr.Writer.Domain, "writer", pr.Writer.URL, "epoch", pr.Writer.Epoch,
		"requested_by", pr.RequestedBy, "approved_by", who, "state", des.State)
	n.g.audit.Record("ledger_promotion_approved", map[string]any{"id": pr.ID, "writer": pr.Writer, "requested_by": pr.RequestedBy,
		"approved_by": who, "reason": pr.Reason, "state": des.State})
	writeJSON(w, http.StatusOK, map[string]any{"promotion": pr, "designation": des})
}
