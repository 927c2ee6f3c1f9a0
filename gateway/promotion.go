package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"hedge/configs"
	"hedge/gateway/ledger"
	"hedge/internal/adminauth"
	"hedge/internal/problem"
)

// promotions are operators' requests to designate a writer. One operator
// asks, a different one approves within the window (four eyes); only then
// is the promotion carried out, at the writer itself (its admin API makes
// it the writer at the new epoch), then on every node of this process, with
// an audit record for each step. Nodes of other processes and regions learn
// it from their probes of the writers' role endpoints: the writer's epoch is
// the truth they all read. Both operators are admin tokens holding the role
// promote, told apart by their names.
type promotions struct {
	mu      sync.Mutex
	pending map[string]*Promotion // pending, and finished ones kept for a window
}

// maxPendingPromotions bounds the promotions waiting for approval: each is
// a writer change someone must review, and a leaked token must not be able
// to grow the list without end.
const maxPendingPromotions = 16

// Promotion is one request to designate a writer.
type Promotion struct {
	ID          string        `json:"id"`
	Writer      ledger.Writer `json:"writer"`
	Reason      string        `json:"reason"`
	RequestedBy string        `json:"requested_by"`
	RequestedAt time.Time     `json:"requested_at"`
	Expires     time.Time     `json:"expires"`
	ApprovedBy  string        `json:"approved_by,omitempty"`
	Status      string        `json:"status"` // pending | applied | rejected
	Result      string        `json:"result,omitempty"`
	// Done is when an approval applied or rejected it; finished promotions
	// are listed for one promotion window after that, then dropped (the
	// audit log keeps them).
	Done time.Time `json:"done,omitzero"`
}

// prune drops promotions that expired while pending, recording each in
// the audit log as expired, and finished ones older than window; p.mu is
// held.
func (n *Node) prune(p *promotions, now time.Time, window time.Duration) {
	for id, pr := range p.pending {
		switch {
		case pr.Status == "pending" && now.After(pr.Expires):
			delete(p.pending, id)
			n.log.Warn("writer promotion expired unapproved", "id", pr.ID, "domain", pr.Writer.Domain, "writer", pr.Writer.URL, "requested_by", pr.RequestedBy)
			n.g.audit.Record("ledger_promotion_expired", map[string]any{"id": pr.ID, "writer": pr.Writer, "requested_by": pr.RequestedBy,
				"reason": pr.Reason, "expires": pr.Expires})
		case pr.Status != "pending" && now.Sub(pr.Done) > window:
			delete(p.pending, id)
		}
	}
}

func (p *promotions) countPending() int {
	c := 0
	for _, pr := range p.pending {
		if pr.Status == "pending" {
			c++
		}
	}
	return c
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
		n.prune(p, time.Now(), n.state.Load().cfg.Ledger.Promotion.Window.D())
		list := make([]Promotion, 0, len(p.pending))
		for _, pr := range p.pending {
			list = append(list, *pr)
		}
		p.mu.Unlock()
		slices.SortFunc(list, func(a, b Promotion) int { return a.RequestedAt.Compare(b.RequestedAt) })
		adminauth.WriteJSON(w, http.StatusOK, map[string]any{"promotions": list})
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
		adminauth.WriteProblem(w, r, problem.BadRequest, `the body is not a promotion: {"domain", "url", "epoch", "reason"}`)
		return
	}
	if body.Domain == "" || body.URL == "" || body.Epoch <= 0 || strings.TrimSpace(body.Reason) == "" {
		adminauth.WriteProblem(w, r, problem.UnprocessableInput, "domain, url, a positive epoch and a reason are required")
		return
	}
	st := n.state.Load()
	cur := st.directory.Lookup(body.Domain)
	switch {
	case cur == nil:
		adminauth.WriteProblem(w, r, problem.UnprocessableInput, "no ledger domain "+body.Domain)
		return
	case cur.OK() && body.Epoch <= cur.Writer.Epoch:
		adminauth.WriteProblem(w, r, problem.UnprocessableInput, fmt.Sprintf("epoch %d is not higher than the current writer's %d", body.Epoch, cur.Writer.Epoch))
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
	n.prune(p, now, st.cfg.Ledger.Promotion.Window.D())
	if p.countPending() >= maxPendingPromotions {
		p.mu.Unlock()
		adminauth.WriteProblem(w, r, problem.UnprocessableInput, fmt.Sprintf("%d promotions are already pending: approve them or let them expire first", maxPendingPromotions))
		return
	}
	p.pending[pr.ID] = pr
	p.mu.Unlock()
	n.log.Warn("writer promotion requested", "id", pr.ID, "domain", body.Domain, "writer", body.URL, "epoch", body.Epoch, "by", who, "reason", body.Reason)
	n.g.audit.Record("ledger_promotion_requested", map[string]any{"id": pr.ID, "writer": pr.Writer, "by": who, "reason": pr.Reason, "expires": pr.Expires})
	adminauth.WriteJSON(w, http.StatusAccepted, pr)
}

func (n *Node) approvePromotion(w http.ResponseWriter, r *http.Request) {
	who := operator(r)
	p := &n.g.promotions
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	n.prune(p, now, n.state.Load().cfg.Ledger.Promotion.Window.D())
	pr := p.pending[r.PathValue("id")]
	switch {
	case pr == nil:
		adminauth.WriteProblem(w, r, problem.NotFound, "no such promotion pending: it may have expired unapproved (see the audit log); request it again")
		return
	case pr.Status != "pending":
		adminauth.WriteProblem(w, r, problem.UnprocessableInput, "this promotion is "+pr.Status)
		return
	case who == pr.RequestedBy:
		adminauth.WriteProblem(w, r, problem.Forbidden, "four eyes: an operator other than "+who+" must approve")
		return
	}
	pr.Done = now
	pr.ApprovedBy = who
	// At the writer first: a designation the writer does not hold would
	// send bets to a ledger that refuses them, and other nodes would never
	// learn it.
	ctx, cancel := context.WithTimeout(r.Context(), promoteAtWriterTimeout)
	err := n.state.Load().directory.PromoteAt(ctx, pr.Writer)
	cancel()
	if err != nil {
		pr.Status, pr.Result = "rejected", err.Error()
		n.log.Error("writer promotion not taken by the writer", "id", pr.ID, "domain", pr.Writer.Domain, "writer", pr.Writer.URL,
			"epoch", pr.Writer.Epoch, "error", err)
		n.g.audit.Record("ledger_promotion_rejected", map[string]any{"id": pr.ID, "writer": pr.Writer, "approved_by": who, "error": err.Error()})
		adminauth.WriteProblem(w, r, problem.PromotionFailed, promoteFailure(err))
		return
	}
	var des ledger.Designation
	for _, node := range n.g.nodes {
		if des, err = node.state.Load().directory.Promote(pr.Writer); err != nil {
			break
		}
	}
	if err != nil {
		pr.Status, pr.Result = "rejected", err.Error()
		n.g.audit.Record("ledger_promotion_rejected", map[string]any{"id": pr.ID, "writer": pr.Writer, "approved_by": who, "error": err.Error()})
		adminauth.WriteProblem(w, r, problem.UnprocessableInput, "promotion rejected: "+err.Error())
		return
	}
	pr.Status, pr.Result = "applied", string(des.State)
	n.log.Warn("writer promotion applied", "id", pr.ID, "domain", pr.Writer.Domain, "writer", pr.Writer.URL, "epoch", pr.Writer.Epoch,
		"requested_by", pr.RequestedBy, "approved_by", who, "state", des.State)
	n.g.audit.Record("ledger_promotion_approved", map[string]any{"id": pr.ID, "writer": pr.Writer, "requested_by": pr.RequestedBy,
		"approved_by": who, "reason": pr.Reason, "state": des.State})
	adminauth.WriteJSON(w, http.StatusOK, map[string]any{"promotion": pr, "designation": des})
}

// promoteAtWriterTimeout bounds the call that carries a promotion out at
// the writer.
const promoteAtWriterTimeout = 5 * time.Second

// promoteFailure says why a writer did not take a promotion, without
// internal error text (the log and the audit record have it).
func promoteFailure(err error) string {
	var pe *ledger.PromoteError
	switch {
	case !errors.As(err, &pe):
		return "the writer is not a configured writer of the domain"
	case pe.Status == 0:
		return "the writer " + pe.Writer + " could not be reached: nothing was designated; approve a new request once it answers"
	case pe.Problem != "":
		return fmt.Sprintf("the writer %s refused the promotion (%d %s): nothing was designated", pe.Writer, pe.Status, pe.Problem)
	}
	return fmt.Sprintf("the writer %s did not confirm the promotion (status %d): nothing was designated", pe.Writer, pe.Status)
}
