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

// betBody is a 1 KB bet as the schema builtin:bet describes it, its free-text
// fields (nickname, comment, note) filled with ordinary table chat in several
// languages — the part the rule engine has to read.
var betBody = `{"table":"bacc-07","round_id":"r-000417","amount":"12.50","currency":"EUR",` +
	`"selection":"banker","odds":1.95,"client_ref":"3f1c2a9e-7b4d-4e8a-9c21-5d6f0a1b2c3d",` +
	`"placed_at":"2025-10-20T19:42:07.512Z","nickname":"Lucky Lena 🍀",` +
	`"comment":"Good luck everyone! Banker has won five hands in a row, so I am riding the streak tonight. ` +
	`Anna is the best dealer on this table, thanks for the smooth game and the friendly chat :) ` +
	`Viel Glück allen am Tisch, ¡suerte a todos!",` +
	`"note":"Second session this evening, keeping to my plan: flat stakes of 12.50 on banker, ` +
	`stop after ten rounds or when I am up by 50. Last round paid 0.95 to 1 after commission, ` +
	`which is fine by me. Reminder to myself: check the tie bet history before switching sides, ` +
	`and do not chase losses. Chat was fun tonight, people were cheering for every natural nine. ` +
	`Bonne chance à tous et à bientôt, 祝大家好运, удачи всем, and see you at the weekend tournament!"}`

// attackQuery is a classic SQL injection in the query string.
var attackQuery = "/api/lobby/tables?category=" + url.QueryEscape("baccarat' UNION SELECT username, password FROM users -- ")

// attackBet is betBody with a SQL injection in its comment: valid for the
// schema, so only the rule engine can stop it.
var attackBet = strings.Replace(betBody,
	`"comment":"Good luck everyone!`,
	`"comment":"1' UNION SELECT username, password FROM users -- Good luck everyone!`, 1)

// kind is one of the measured requests.
type kind int

const (
	get kind = iota
	post
)

func (k kind) String() string {
	if k == get {
		return "GET"
	}
	return "POST"
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
	case post:
		req.Header.SetMethod(fasthttp.MethodPost)
		req.SetRequestURI(postPath)
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
