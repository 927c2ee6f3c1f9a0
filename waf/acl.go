package waf

import (
	"fmt"
	"net/netip"

	"hedge/configs"
)

// ACL admits or denies client addresses. Deny wins; a non-empty allow list
// admits only its ranges. Lists are short (a payment provider's ranges, a
// handful of banned networks), so a linear scan of masked prefixes beats any
// tree on the hot path; IPv4-mapped IPv6 addresses are matched as IPv4.
type ACL struct {
	allow, deny []netip.Prefix
}

// NewACL parses the configured lists; nil when both are empty.
func NewACL(c configs.ACL) (*ACL, error) {
	if len(c.Allow) == 0 && len(c.Deny) == 0 {
		return nil, nil
	}
	a := &ACL{}
	for _, s := range c.Allow {
		p, err := configs.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("acl allow: %w", err)
		}
		a.allow = append(a.allow, p)
	}
	for _, s := range c.Deny {
		p, err := configs.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("acl deny: %w", err)
		}
		a.deny = append(a.deny, p)
	}
	return a, nil
}

// Admits reports whether addr may pass. A nil ACL admits everyone.
func (a *ACL) Admits(addr netip.Addr) bool {
	if a == nil {
		return true
	}
	addr = addr.Unmap()
	for _, p := range a.deny {
		if p.Contains(addr) {
			return false
		}
	}
	if len(a.allow) == 0 {
		return true
	}
	for _, p := range a.allow {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
