package learn

// Merge adds what o saw to m, as if m had observed o's requests too: the
// models of one route learned on several nodes become one. The bounds hold
// as in Observe; what they keep out is counted in Dropped.
func (m *Model) Merge(o *Model) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.Requests += o.Requests
	m.Bodies += o.Bodies
	m.OtherBodies += o.OtherBodies
	for ct, n := range o.ContentTypes {
		if len(m.ContentTypes) < 8 || m.ContentTypes[ct] > 0 {
			m.ContentTypes[ct] += n
		}
	}
	m.Dropped.add(o.Dropped)
	mergeFields(m.Fields, o.Fields, MaxFields, &m.Dropped, &m.Dropped.Fields)
	mergeFields(m.Params, o.Params, MaxParams, &m.Dropped, &m.Dropped.Params)
	for _, q := range o.Pairs {
		p := m.pair(q.Rule, q.Var)
		if p == nil {
			if len(m.Pairs) >= MaxPairs {
				m.Dropped.Pairs += q.Requests
				continue
			}
			p = &Pair{Rule: q.Rule, Var: q.Var, Field: q.Field, Msg: q.Msg, Example: q.Example}
			m.Pairs = append(m.Pairs, p)
		}
		p.Requests += q.Requests
		if !p.merge(&q.ClientSet, MaxClients) {
			m.Dropped.Clients++
		}
	}
	m.Senders.merge(&o.Senders, MaxFieldClients)
}

// add counts what o dropped too.
func (d *Dropped) add(o Dropped) {
	d.Fields += o.Fields
	d.Params += o.Params
	d.Values += o.Values
	d.Pairs += o.Pairs
	d.Clients += o.Clients
	d.Leaves += o.Leaves
	d.Bodies += o.Bodies
}

// mergeFields merges the fields of from into into, which holds at most
// bound of them; a field that finds no room counts its values in dropped.
func mergeFields(into, from map[string]*Field, bound int, d *Dropped, dropped *int64) {
	for name, g := range from {
		f := into[name]
		if f == nil {
			if len(into) >= bound {
				*dropped += g.Count
				continue
			}
			f = newField()
			into[name] = f
		}
		f.merge(g, d)
	}
}

func (f *Field) merge(g *Field, d *Dropped) {
	f.Count += g.Count
	for t, n := range g.Types {
		f.Types[t] += n
	}
	if g.MinLen >= 0 && (f.MinLen < 0 || g.MinLen < f.MinLen) {
		f.MinLen = g.MinLen
	}
	f.MaxLen = max(f.MaxLen, g.MaxLen)
	f.Chars |= g.Chars
	switch {
	case f.Many:
	case g.Many:
		f.Many, f.Values = true, nil
	case len(g.Values) > 0:
		if f.Values == nil {
			f.Values = map[string]int64{}
		}
		for v, n := range g.Values {
			f.Values[v] += n
		}
		if len(f.Values) > MaxValues {
			f.Many, f.Values = true, nil
			d.Values++
		}
	}
	f.NotUUID, f.NotDateTime = f.NotUUID || g.NotUUID, f.NotDateTime || g.NotDateTime
	f.NotDate, f.NotAmount = f.NotDate || g.NotDate, f.NotAmount || g.NotAmount
	if g.Numbers {
		if !f.Numbers {
			f.Min, f.Max, f.Numbers = g.Min, g.Max, true
		}
		f.Min, f.Max = min(f.Min, g.Min), max(f.Max, g.Max)
	}
	f.Decimals = max(f.Decimals, g.Decimals)
	f.MaxItems = max(f.MaxItems, g.MaxItems)
	f.ClientSet.merge(&g.ClientSet, MaxFieldClients)
}

// merge adds o's addresses; it reports false when some did not fit.
func (c *ClientSet) merge(o *ClientSet, bound int) bool {
	ok := true
	for _, a := range o.Clients {
		ok = c.add(a, bound) && ok
	}
	c.ManyClients = c.ManyClients || o.ManyClients
	return ok
}
