package main

import (
	"net/url"
	"strings"

	"github.com/valyala/fasthttp"
)

// The two measured requests and the two attacks. Every server under test
// receives exactly the same bytes.

const (
	host     = "play.edge.test"
	getPath  = "/api/lobby/tables?category=baccarat&limit=20&lang=en-GB"
	postPath = "/api/bets"
	// genericPath takes the same bet on a route with no schema: the rule
	// engine reads the whole body, as on an operator's routes without one.
	genericPath = "/api/feedback"
)

// jwt is a bearer token as a player's client sends it: HS256, three base64url
// parts, a subject, a domain and the usual time claims. No server here
// verifies it; the rule engine inspects it like any header.
const jwt = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImRlbW8tMSIsInR5cCI6IkpXVCJ9." +
	"eyJhdWQiOlsicGxheS5lZGdlLnRlc3QiXSwiZG9tYWluIjoic2VhIiwiZXhwIjoxNzYxMDAwMDAwLCJpYXQiOjE3NjA5OTY0MDAsImlzcyI6ImhlZGdlLWRlbW8iLCJzdWIiOiJwbGF5ZXItMTA0MiJ9." +
	"Qm3v0b8yH1l9kZ2sXoE4c7tJfWq5nRrA6uPdLgS0iYw"

// browserHeaders are the 14 headers a current Chromium sends with a fetch()
// from the lobby page (Host is set separately).
var browserHeaders = [][2]string{
	{"User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"},
	{"Accept", "application/json, text/plain, */*"},
	{"Accept-Language", "en-GB,en;q=0.9,de;q=0.8"},
	{"Accept-Encoding", "gzip, deflate, br, zstd"},
	{"Referer", "https://play.edge.test/lobby/live?tab=baccarat"},
	{"Cookie", "session=9b2f6c1e8a4d4f0b9c7e2a5d3f1b8c6e; lang=en-GB; consent=analytics%3Dtrue%2Cmarketing%3Dfalse; _ga=GA1.1.1843920571.1760990000"},
	{"Authorization", "Bearer " + jwt},
	{"Sec-Ch-Ua", `"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"`},
	{"Sec-Ch-Ua-Mobile", "?0"},
	{"Sec-Ch-Ua-Platform", `"Windows"`},
	{"Sec-Fetch-Site", "same-origin"},
	{"Sec-Fetch-Mode", "cors"},
	{"Sec-Fetch-Dest", "empty"},
	{"Priority", "u=1, i"},
}

// betBody is a 1 KB bet as the schema builtin:bet describes it: a main bet
// with side bets, what the client says about itself and its video state —
// fields the schema pins down — and a nickname and a short comment, the free
// text the rule engine still reads.
var betBody = `{"table":"bacc-07","round_id":"r-000417","amount":"12.50","currency":"EUR","selection":"banker","odds":1.95,"client_ref":"3f1c2a9e-7b4d-4e8a-9c21-5d6f0a1b2c3d","placed_at":"2025-10-20T19:42:07.512Z","side_bets":[{"selection":"player_pair","amount":"1.00","odds":12},{"selection":"banker_pair","amount":"1.00","odds":12},{"selection":"perfect_pair","amount":"0.50","odds":25},{"selection":"either_pair","amount":"0.50","odds":6},{"selection":"tie","amount":"2.00","odds":9},{"selection":"player","amount":"5.00","odds":2},{"selection":"banker","amount":"5.00","odds":1.95}],"client":{"app":"casino-web","version":"4.18.2","platform":"web","locale":"de-AT","utc_offset_min":60,"device_id":"9b2f7c1e-4d3a-4b8e-a1f0-7c6d5e4b3a29","session_id":"c0ffee00-1234-4abc-8def-0123456789ab"},"stream":{"mode":"webrtc","quality":"720p","latency_ms":412,"dropped_frames":3},"geo":{"country":"AT","region":"9"},"nickname":"Lucky Lena 🍀","comment":"gl all, riding the banker streak tonight :) nice shoe, Anna!"}`

// attackQuery is a classic SQL injection in the query string.
var attackQuery = "/api/lobby/tables?category=" + url.QueryEscape("baccarat' UNION SELECT username, password FROM users -- ")

// attackBet is betBody with a SQL injection in its comment: valid for the
// schema, so only the rule engine can stop it.
var attackBet = strings.Replace(betBody,
	`"comment":"gl all,`,
	`"comment":"1' UNION SELECT username, password FROM users -- gl all,`, 1)

// kind is one of the measured requests.
type kind int

const (
	get kind = iota
	post
	postGeneric
)

// kinds are the measured requests, in report order.
var kinds = []kind{get, post, postGeneric}

func (k kind) String() string {
	switch k {
	case get:
		return "GET"
	case post:
		return "POST"
	}
	return "POST no schema"
}

// fill writes the request of kind k (or its attack) into req. The client
// (a HostClient) dials its own address; Host is the public name.
func fill(req *fasthttp.Request, k kind, attack bool) {
	req.Reset()
	for _, h := range browserHeaders {
		req.Header.Set(h[0], h[1])
	}
	switch k {
	case get:
		req.Header.SetMethod(fasthttp.MethodGet)
		if attack {
			req.SetRequestURI(attackQuery)
		} else {
			req.SetRequestURI(getPath)
		}
	case post, postGeneric:
		req.Header.SetMethod(fasthttp.MethodPost)
		if k == post {
			req.SetRequestURI(postPath)
		} else {
			req.SetRequestURI(genericPath)
		}
		req.Header.Set("Origin", "https://play.edge.test")
		req.Header.SetContentType("application/json")
		req.Header.Set("Idempotency-Key", "5d1e7c3a-2b9f-4c8e-a1d0-6f3b2e9c7a41")
		if attack {
			req.SetBodyString(attackBet)
		} else {
			req.SetBodyString(betBody)
		}
	}
	req.Header.SetHost(host)
}
