package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"hedge/configs"
	"hedge/gateway/adminauth"
	"hedge/gateway/ledger"
	"hedge/gateway/problem"
)

// promotions are operators' requests to designate a writer. One operator
// asks, a different one approves within the window (four eyes); only then
// does the designation change, on every node of this process, with an audit
// record for each step. Both operators are admin tokens holding the role
// promote, told apart by their names.
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
func operator(r *http.Request) string {
	id, _ := adminauth.From(r.Context())
	return id.Name
}

func (n *Node) registerPromotionAPI(mux *http.ServeMux) {
	mux.Handle("GET /admin/ledger/promotions", adminauth.RequireFunc(configs.RoleRead, func(w http.ResponseWriter, r *http.Request) {
		p := &n.g.promotions
		p.mu.Lock()
		list := make([]Promotion, 0, len(p.pending))
		for _, pr := range p.pending {
			list = append(list, *pr)
		}
		p.mu.Unlock()
		slices.SortFunc(list, func(a, b Promotion) int { return a.RequestedAt.Compare(b.RequestedAt) })
		writeJSON(w, http.StatusOK, map[string]any{"promotions": list})
	}))
	// Loopback callers never hold promote: four eyes are two operators'
	// own tokens, even on the node's machine.
	mux.Handle("POST /admin/ledger/promotions", adminauth.RequireFunc(configs.RolePromote, n.requestPromotion))
	mux.Handle("POST /admin/ledger/promotions/{id}/approve", adminauth.RequireFunc(configs.RolePromote, n.approvePromotion))
}

func (n *Node) requestPromotion(w http.ResponseWriter, r *http.Request) {
	who := operator(r)
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
	who := operator(r)
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
		writeProblem(w, r, problem.Forbidden, "four eyes: an operator other than "+who+" must approve")
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
