// Package waftest holds the requests that tests and benchmarks of the
// protective layer in several packages (waf, waf/crs) send: an ordinary
// browser's headers and a 1 KB bet. Only tests import it.
package waftest

// BrowserHeaders are the 13 headers of an ordinary browser request for the
// lobby, Host first.
var BrowserHeaders = [][2]string{
	{"Host", "play.edge.test"},
	{"User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"},
	{"Accept", "application/json, text/plain, */*"},
	{"Accept-Language", "en-GB,en;q=0.9,de;q=0.8"},
	{"Accept-Encoding", "gzip, deflate, br, zstd"},
	{"Referer", "https://play.edge.test/lobby"},
	{"Cookie", "sid=6f1c2a9e4b7d4e0f9a3c8b1d2e5f7a90; consent=analytics%3Dfalse%26ads%3Dfalse; theme=dark; _lang=en-GB"},
	{"sec-ch-ua", `"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"`},
	{"sec-ch-ua-mobile", "?0"},
	{"sec-ch-ua-platform", `"Windows"`},
	{"Sec-Fetch-Site", "same-origin"},
	{"Sec-Fetch-Mode", "cors"},
	{"Sec-Fetch-Dest", "empty"},
}

// Bet is a 1 KB bet as a client sends it: a main bet with side bets, what
// the client says about itself and its session, and free text (nickname,
// message, promo code).
const Bet = `{"table":"bacc-07","round":"3f2b8c1e-7d4a-4c55-9b0e-2a6f1d9c8e47","amount":"12.50","currency":"EUR",` +
	`"selection":"banker","odds":"0.95","side_bets":[{"type":"pair_player","amount":"2.00"},{"type":"pair_banker","amount":"2.00"},` +
	`{"type":"tie","amount":"1.00"}],"client":{"device":"desktop","os":"Windows 10","browser":"Chrome 124","app_version":"5.12.3",` +
	`"locale":"en-GB","timezone":"Europe/London","screen":"1920x1080","connection":"wifi"},"session":{"id":"6f1c2a9e4b7d4e0f9a3c8b1d2e5f7a90",` +
	`"started_at":"2026-05-01T18:22:41Z","table_joined_at":"2026-05-01T18:40:03Z","stream":"webrtc","latency_ms":412},` +
	`"limits":{"min":"1.00","max":"5000.00","currency":"EUR"},"nickname":"Zoë the lucky one","message":"good luck everyone, 100% banker tonight!",` +
	`"promo_code":"SPRING-2026","chips":[{"value":"5.00","count":2},{"value":"2.50","count":1}],"auto_rebet":false,"confirm":true,` +
	`"placed_at":"2026-05-01T18:41:27.512Z","sequence":1842,"dealer":"anna-k","shoe":"shoe-2026-05-01-07","hand":37,` +
	`"idempotency_key":"7f1c2a9e-demo-1","geo":{"country":"GB","region":"ENG"},"responsible_gaming":{"session_limit_ms":7200000,"reality_check":true}}`
