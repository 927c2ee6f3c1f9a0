package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// viewerSet is the -role viewers process: K WHEP clients that count, per
// kind, the tagged packets whose send time falls in the current window.
type viewerSet struct {
	winFrom, winTo atomic.Int64 // Unix ns; packets sent in [from, to) count

	mu      sync.Mutex
	viewers []*viewer
}

type viewer struct {
	set      *viewerSet
	peer     *peer
	session  resource
	posted   time.Time
	count    [2]atomic.Int64
	firstPkt atomic.Int64 // Unix ns of the first packet, 0 until then
	firstKey atomic.Int64 // of the first keyframe packet
	gotPkt   chan struct{}
	gotKey   chan struct{}
	pktOnce  sync.Once
	keyOnce  sync.Once

	record bool // keep per-packet one-way delays (relay measurement)
	dmu    sync.Mutex
	delays [2]map[uint32]int64 // counter → receive time − send time, ns
}

// Commands on stdin, one JSON line answered on stdout each:
//
//	add N URL [record]  → {"added":N,"failed":N,"errors":[...]} N more viewers of the WHEP URL
//	window FROM TO      → {} count packets sent in [FROM, TO) (Unix ns) from now on, counts reset
//	report              → {"counts":[[video,audio],...]} per viewer, in the order added
//	ttff N GAPMS URL    → {"joins":[{"post_ms":..,"first_ms":..,"key_ms":..},...]} N viewers joined and left one by one
//	delays              → {"delays":[{"v":{counter:ns},"a":{...}},...]} of the recording viewers
//	close               → {} every viewer leaves
func runViewers() error {
	vs := &viewerSet{}
	defer vs.closeAll()
	sc := bufio.NewScanner(os.Stdin)
	enc := json.NewEncoder(os.Stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch {
		case f[0] == "add" && len(f) >= 3:
			n, _ := strconv.Atoi(f[1])
			added, errs := vs.add(n, f[2], len(f) > 3 && f[3] == "record")
			if len(errs) > 3 {
				errs = errs[:3]
			}
			_ = enc.Encode(map[string]any{"added": added, "failed": n - added, "errors": errs})
		case f[0] == "window" && len(f) == 3:
			from, _ := strconv.ParseInt(f[1], 10, 64)
			to, _ := strconv.ParseInt(f[2], 10, 64)
			vs.window(from, to)
			_ = enc.Encode(map[string]any{})
		case f[0] == "report":
			_ = enc.Encode(map[string]any{"counts": vs.counts()})
		case f[0] == "ttff" && len(f) == 4:
			n, _ := strconv.Atoi(f[1])
			gap, _ := strconv.Atoi(f[2])
			joins, err := vs.ttff(n, time.Duration(gap)*time.Millisecond, f[3])
			res := map[string]any{"joins": joins}
			if err != nil {
				res["error"] = err.Error()
			}
			_ = enc.Encode(res)
		case f[0] == "delays":
			_ = enc.Encode(map[string]any{"delays": vs.delays()})
		case f[0] == "close":
			vs.closeAll()
			_ = enc.Encode(map[string]any{})
		default:
			return fmt.Errorf("viewers: bad command %q", sc.Text())
		}
	}
	return sc.Err()
}

// add joins n viewers, four at a time; a viewer counts as added once its
// first packet arrived (within 10 s).
func (vs *viewerSet) add(n int, url string, record bool) (int, []string) {
	var (
		mu    sync.Mutex
		added int
		errs  []string
		wg    sync.WaitGroup
	)
	sem := make(chan struct{}, 4)
	for range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			v, err := vs.join(url, record)
			if err == nil {
				select {
				case <-v.gotPkt:
				case <-time.After(10 * time.Second):
					err = errors.New("no packet within 10s of the 201")
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err.Error())
				if v != nil {
					v.close()
				}
				return
			}
			added++
			vs.mu.Lock()
			vs.viewers = append(vs.viewers, v)
			vs.mu.Unlock()
		}()
	}
	wg.Wait()
	return added, errs
}

// join creates one WHEP viewer and returns once its DTLS handshake is
// done; its packets are counted from then on.
func (vs *viewerSet) join(url string, record bool) (*viewer, error) {
	v := &viewer{set: vs, record: record, gotPkt: make(chan struct{}), gotKey: make(chan struct{})}
	if record {
		v.delays = [2]map[uint32]int64{{}, {}}
	}
	p, err := newPeer(v.onRTP)
	if err != nil {
		return nil, err
	}
	v.peer = p
	offer, err := p.offer()
	if err != nil {
		v.close()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	v.posted = time.Now()
	answer, sess, err := postSDP(ctx, url, "", offer)
	if err != nil {
		v.close()
		return nil, err
	}
	v.session = sess
	if err := p.answer(answer); err != nil {
		v.close()
		return nil, err
	}
	if err := p.start(ctx); err != nil {
		v.close()
		return nil, err
	}
	return v, nil
}

// onRTP counts one decrypted packet. The tag is the end of the packet, so
// the header is not parsed.
func (v *viewer) onRTP(pkt []byte, at time.Time) {
	now := at.UnixNano()
	t, ok := readTag(pkt)
	if !ok {
		return
	}
	if v.firstPkt.Load() == 0 {
		v.firstPkt.CompareAndSwap(0, now)
		v.pktOnce.Do(func() { close(v.gotPkt) })
	}
	if t.flags&flagKey != 0 && v.firstKey.Load() == 0 {
		v.firstKey.CompareAndSwap(0, now)
		v.keyOnce.Do(func() { close(v.gotKey) })
	}
	if t.sent >= v.set.winFrom.Load() && t.sent < v.set.winTo.Load() {
		v.count[t.kind].Add(1)
		if v.record {
			v.dmu.Lock()
			v.delays[t.kind][t.counter] = now - t.sent
			v.dmu.Unlock()
		}
	}
}

func (v *viewer) close() {
	deleteSession(v.session)
	v.peer.close()
}

func (vs *viewerSet) window(from, to int64) {
	vs.winTo.Store(0) // nothing counts while the counters reset
	vs.mu.Lock()
	for _, v := range vs.viewers {
		v.count[0].Store(0)
		v.count[1].Store(0)
		if v.record {
			v.dmu.Lock()
			v.delays = [2]map[uint32]int64{{}, {}}
			v.dmu.Unlock()
		}
	}
	vs.mu.Unlock()
	vs.winFrom.Store(from)
	vs.winTo.Store(to)
}

func (vs *viewerSet) counts() [][2]int64 {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	out := make([][2]int64, len(vs.viewers))
	for i, v := range vs.viewers {
		out[i] = [2]int64{v.count[0].Load(), v.count[1].Load()}
	}
	return out
}

func (vs *viewerSet) delays() []map[string]map[uint32]int64 {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	var out []map[string]map[uint32]int64
	for _, v := range vs.viewers {
		if v.record {
			v.dmu.Lock()
			out = append(out, map[string]map[uint32]int64{"v": v.delays[0], "a": v.delays[1]})
			v.dmu.Unlock()
		}
	}
	return out
}

type join struct {
	PostMs  float64 `json:"post_ms"`  // POST /whep until the 201
	FirstMs float64 `json:"first_ms"` // POST until the first RTP packet
	KeyMs   float64 `json:"key_ms"`   // POST until the first keyframe packet
}

// ttff joins n viewers one after the other, each leaving once its first
// keyframe arrived (or after 5 s), gap apart.
func (vs *viewerSet) ttff(n int, gap time.Duration, url string) ([]join, error) {
	var out []join
	for range n {
		v, err := vs.join(url, false)
		if err != nil {
			return out, err
		}
		posted := time.Since(v.posted)
		select {
		case <-v.gotKey:
		case <-time.After(5 * time.Second):
		}
		j := join{PostMs: ms(posted)}
		if t := v.firstPkt.Load(); t != 0 {
			j.FirstMs = ms(time.Unix(0, t).Sub(v.posted))
		}
		if t := v.firstKey.Load(); t != 0 {
			j.KeyMs = ms(time.Unix(0, t).Sub(v.posted))
		}
		out = append(out, j)
		v.close()
		time.Sleep(gap)
	}
	return out, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (vs *viewerSet) closeAll() {
	vs.mu.Lock()
	all := vs.viewers
	vs.viewers = nil
	vs.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, v := range all {
		sem <- struct{}{}
		wg.Add(1)
		go func() { defer func() { <-sem; wg.Done() }(); v.close() }()
	}
	wg.Wait()
}
