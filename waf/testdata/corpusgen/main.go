// Command corpusgen writes hedge's false-positive corpus: ordinary requests
// of a live-casino platform, one JSON object per line, for waf's corpus
// test. It is deterministic (fixed seed), so the committed file only
// changes when this program does:
//
//	go run ./waf/testdata/corpusgen -o waf/testdata/corpus/requests.jsonl
package main

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
)

// Request is one corpus line. The corpus test reads the same shape.
type Request struct {
	Name    string      `json:"name"`
	Kind    string      `json:"kind"`             // money | proxy | stream
	Schema  string      `json:"schema,omitempty"` // the route's body schema (money routes)
	Method  string      `json:"method"`
	URI     string      `json:"uri"` // path and query
	Headers [][2]string `json:"headers"`
	Body    string      `json:"body,omitempty"`
}

var rng = rand.New(rand.NewPCG(2026, 3))

func pick[T any](s []T) T { return s[rng.IntN(len(s))] }

func uuid() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func hexN(n int) string {
	const h = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = h[rng.IntN(16)]
	}
	return string(b)
}

// jwt signs an HS256 token shaped like the demo's (issuer, audience,
// subject, ledger domain, times).
func jwt(sub, dom string) string {
	enc := base64.RawURLEncoding
	head := enc.EncodeToString([]byte(`{"alg":"HS256","kid":"demo-1","typ":"JWT"}`))
	iat := 1780000000 + rng.IntN(86400)
	claims := fmt.Sprintf(`{"aud":["play.edge.test"],"dom":%q,"exp":%d,"iat":%d,"iss":"hedge-demo","sub":%q}`, dom, iat+3600, iat, sub)
	unsigned := head + "." + enc.EncodeToString([]byte(claims))
	m := hmac.New(sha256.New, []byte("demo-only-secret-do-not-use-in-production"))
	m.Write([]byte(unsigned))
	return unsigned + "." + enc.EncodeToString(m.Sum(nil))
}

// Free text as players write it: names and chat in many scripts, with
// apostrophes, percent signs, ampersands, quotes and emoji.
var nicknames = []string{
	"Zoë", "O'Brien", "Lucky_Lou", "Jean-Luc", "Ana María", "Björn 🐻", "Владимир", "Ксюша_777", "Γιώργος", "Νίκη",
	"محمد", "ليلى ✨", "דוד", "שירה", "王小明", "さくら", "김민준", "สมชาย", "राहुल", "प्रिया", "Nguyễn Văn An", "Şebnem",
	"Zsófi", "Łukasz", "Chloé & Max", "\"Ace\" Ventura", "100%Luck", "D'Artagnan", "Mr. Banker", "la_reina 👑",
}

var chat = []string{
	"Good luck everyone!",
	"Let's go banker 🔥🔥",
	"I'm feeling lucky tonight, 100% banker",
	"That's 5 ties in a row, can't believe it 😂",
	"50% on player & 50% on banker, why not",
	"Dealer's hands are so fast tonight",
	"Who's up for the next round? 🎲",
	"GG wp, see you tomorrow 👋",
	"She said \"tie\" and it was a tie!",
	"Rock & roll, all in",
	"won 3x, thanks dealer ❤️",
	"brb coffee ☕",
	"C'est l'heure, allez banquier !",
	"Qu'est-ce qu'on joue ? Rouge ou noir ?",
	"¡Vamos! ¿Alguien más apuesta al empate?",
	"Das war knapp – nächste Runde alles auf Spieler",
	"Ciao a tutti, buona fortuna 🍀",
	"Boa sorte a todos, vamos que vamos!",
	"Всем удачи! Ставлю на банкира 💰",
	"Ну что, ещё раунд? Дилер сегодня в ударе",
	"Καλή τύχη σε όλους! Πάμε τράπεζα",
	"بالتوفيق للجميع، الجولة القادمة على اللاعب",
	"مبروك للفائزين 🎉",
	"בהצלחה לכולם! הולך על הבנקאי",
	"大家好运！这局押庄 🀄",
	"庄家连赢五把了，太厉害了",
	"みなさん頑張りましょう！次はプレイヤーで",
	"다들 행운을 빕니다 ㅎㅎ",
	"ขอให้โชคดีทุกคนนะครับ 🙏",
	"सभी को शुभकामनाएं! इस बार बैंकर पर",
	"Chúc mọi người may mắn!",
	"İyi şanslar herkese, kasaya oynuyorum",
	"Powodzenia wszystkim :)",
	"lol that was close... 8 vs 9",
	"x2 on tie? nah too risky",
	"5/5 streak!! 🚀",
	"can someone explain the 'perfect pair' side bet?",
	"it's 2am here, last one & then bed",
	"10% cashback on weekends is nice",
	"hi from São Paulo 🇧🇷",
	"greetings from Kraków 🇵🇱",
	"#teambanker",
	"@dealer Anna you're the best :)",
	"gg",
	"",
}

var bios = []string{
	"Just here for the live tables & a good chat.",
	"Baccarat fan since '09. Banker > Player.",
	"Ich spiele nur am Wochenende – meistens Roulette.",
	"Amateur de blackjack, toujours à l'heure pour la table de 21h.",
	"Люблю живые игры и хороших дилеров 🙂",
	"Μου αρέσει η ρουλέτα και ο καφές ☕",
	"أحب الباكارات والدردشة مع اللاعبين",
	"אוהב משחקי שולחן חיים",
	"喜欢百家乐和轮盘，周末来玩",
	"ライブカジノが好きです。よろしく！",
	"เล่นเพื่อความสนุกเท่านั้น",
	"लाइव कैसीनो का शौक़ीन 🎰",
	"Quote of the day: \"fortune favours the bold\"",
	"Max 20% of my budget per session, that's the rule",
}

var (
	tables     = []string{"bacc-07", "bacc-01", "bacc-12", "speed-bacc-3", "dt-02", "roul-05", "bj-vip-1", "lightning-roul"}
	currencies = []string{"EUR", "EUR", "EUR", "GBP", "USD", "SEK", "NOK", "BRL", "CAD", "PLN", "JPY", "INR"}
	selections = []string{"banker", "player", "tie", "banker_pair", "player_pair", "dragon", "tiger", "red", "black", "odd", "even"}
	langs      = []string{"en-GB,en;q=0.9", "de-DE,de;q=0.9,en;q=0.8", "fr-FR,fr;q=0.9,en;q=0.7", "ru-RU,ru;q=0.9,en;q=0.8",
		"el-GR,el;q=0.9", "ar-SA,ar;q=0.9,en;q=0.6", "he-IL,he;q=0.9", "zh-CN,zh;q=0.9", "ja-JP,ja;q=0.9", "th-TH,th;q=0.9",
		"hi-IN,hi;q=0.9,en-IN;q=0.8", "pt-BR,pt;q=0.9", "es-ES,es;q=0.9", "pl-PL,pl;q=0.9", "tr-TR,tr;q=0.9"}
)

type client struct {
	ua, platform, mobile, brand string
	app                         bool
}

var clients = []client{
	{ua: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", platform: `"Windows"`, mobile: "?0", brand: `"Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24"`},
	{ua: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15"},
	{ua: "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"},
	{ua: "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.104 Mobile Safari/537.36", platform: `"Android"`, mobile: "?1", brand: `"Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24"`},
	{ua: "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"},
	{ua: "LiveCasino/5.12.3 (iPhone; iOS 18.1; Scale/3.00)", app: true},
	{ua: "LiveCasino/5.12.1 (Android 14; Pixel 8; okhttp/4.12.0)", app: true},
}

type player struct {
	sub, dom, token, sid string
	c                    client
	lang                 string
}

var players = func() []player {
	var ps []player
	for i := range 40 {
		dom := []string{"sea", "eu"}[i%2]
		sub := fmt.Sprintf("player-%d", 1000+i*37)
		ps = append(ps, player{sub: sub, dom: dom, token: jwt(sub, dom), sid: hexN(32), c: pick(clients), lang: pick(langs)})
	}
	return ps
}()

// headers a player's client sends to the API.
func apiHeaders(p player, withAuth bool, extra ...[2]string) [][2]string {
	h := [][2]string{{"Host", "play.edge.test"}, {"User-Agent", p.c.ua}}
	if p.c.app {
		h = append(h, [2]string{"Accept", "application/json"}, [2]string{"Accept-Language", p.lang},
			[2]string{"Accept-Encoding", "gzip"}, [2]string{"X-App-Version", "5.12.3"})
	} else {
		h = append(h, [2]string{"Accept", "application/json, text/plain, */*"}, [2]string{"Accept-Language", p.lang},
			[2]string{"Accept-Encoding", "gzip, deflate, br, zstd"}, [2]string{"Origin", "https://play.edge.test"},
			[2]string{"Referer", "https://play.edge.test/live/" + pick(tables)})
		if p.c.brand != "" {
			h = append(h, [2]string{"sec-ch-ua", p.c.brand}, [2]string{"sec-ch-ua-mobile", p.c.mobile}, [2]string{"sec-ch-ua-platform", p.c.platform})
		}
		h = append(h, [2]string{"Sec-Fetch-Site", "same-origin"}, [2]string{"Sec-Fetch-Mode", "cors"}, [2]string{"Sec-Fetch-Dest", "empty"},
			[2]string{"Cookie", "sid=" + p.sid + "; consent=analytics%3Dtrue%26ads%3Dfalse; theme=" + pick([]string{"dark", "light"}) + "; _lang=" + strings.SplitN(p.lang, ",", 2)[0]})
	}
	if withAuth {
		h = append(h, [2]string{"Authorization", "Bearer " + p.token})
	}
	h = append(h, [2]string{"traceparent", "00-" + hexN(32) + "-" + hexN(16) + "-01"})
	return append(h, extra...)
}

func jsonBody(fields ...any) string {
	// Ordered fields, as clients write them.
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(fields); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(fields[i])
		v, _ := json.Marshal(fields[i+1])
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.String()
}

func amount() string {
	switch rng.IntN(4) {
	case 0:
		return fmt.Sprint(pick([]int{1, 2, 5, 10, 20, 25, 50, 100, 250, 1000}))
	case 1:
		return fmt.Sprintf("%d.%02d", rng.IntN(500)+1, pick([]int{0, 50, 25, 10, 99}))
	default:
		return fmt.Sprintf("%d.00", pick([]int{1, 2, 5, 10, 20, 50, 100}))
	}
}

func idemKey() string {
	if rng.IntN(3) == 0 {
		return `"` + uuid() + `"` // a Structured Field string, as the draft writes it
	}
	return uuid()
}

func main() {
	out := flag.String("o", "waf/testdata/corpus/requests.jsonl", "output `file`")
	flag.Parse()
	var reqs []Request
	add := func(r Request) { reqs = append(reqs, r) }
	jsonCT := [2]string{"Content-Type", "application/json"}

	// Bets (schema-checked money route).
	for i := range 100 {
		p := pick(players)
		fields := []any{"table", pick(tables), "amount", amount(), "currency", pick(currencies), "selection", pick(selections)}
		switch i % 5 {
		case 1:
			fields = append(fields, "round_id", fmt.Sprintf("r-%06d", rng.IntN(999999)), "client_ref", uuid())
		case 2:
			fields = append(fields, "nickname", pick(nicknames), "comment", pick(chat))
		case 3:
			fields = append(fields, "odds", pick([]float64{1.95, 2, 8, 9, 12, 25, 1.5}), "placed_at",
				fmt.Sprintf("2026-05-%02dT%02d:%02d:%02d.%03dZ", rng.IntN(28)+1, rng.IntN(24), rng.IntN(60), rng.IntN(60), rng.IntN(1000)))
		case 4:
			fields = append(fields, "note", pick(chat)+" "+pick(chat), "nickname", pick(nicknames))
		}
		add(Request{Name: fmt.Sprintf("bet-%03d", i), Kind: "money", Schema: "builtin:bet", Method: "POST", URI: "/api/bets",
			Headers: apiHeaders(p, true, jsonCT, [2]string{"Idempotency-Key", idemKey()}), Body: jsonBody(fields...)})
	}

	// Deposits (schema-checked cashier route).
	returns := []string{"https://play.edge.test/cashier/done", "https://play.edge.test/cashier/done?status=ok&ref=%s",
		"livecasino://cashier/return?ref=%s", "https://play.edge.test/lobby?tab=live&from=cashier"}
	descriptors := []string{"Top-up", "Friday night's game", "Deposit – weekend 🎉", "Bonus & reload", "Пополнение счёта",
		"Einzahlung für's Wochenende", "充值", "ฝากเงิน", "إيداع", "Dépôt d'été", "100% match bonus deposit"}
	for i := range 40 {
		p := pick(players)
		fields := []any{"amount", amount(), "currency", pick(currencies)}
		if i%2 == 1 {
			ru := pick(returns)
			if strings.Contains(ru, "%s") {
				ru = fmt.Sprintf(ru, uuid())
			}
			fields = append(fields, "method", pick([]string{"card", "bank_transfer", "e_wallet", "open_banking"}),
				"method_id", "pm_"+hexN(14), "client_ref", uuid(), "return_url", ru)
		}
		if i%3 == 0 {
			fields = append(fields, "descriptor", pick(descriptors))
		}
		if i%7 == 0 {
			fields = append(fields, "bonus_code", pick([]string{"WELCOME100", "RELOAD50", "WEEKEND25"}))
		}
		add(Request{Name: fmt.Sprintf("deposit-%03d", i), Kind: "money", Schema: "builtin:cashier-deposit", Method: "POST",
			URI: "/cashier/deposit", Headers: apiHeaders(p, true, jsonCT, [2]string{"Idempotency-Key", idemKey()}), Body: jsonBody(fields...)})
	}

	// Balance reads.
	for i := range 15 {
		p := pick(players)
		uri := "/api/wallet/balance"
		if i%3 == 0 {
			uri += "?currency=" + pick(currencies)
		}
		add(Request{Name: fmt.Sprintf("balance-%03d", i), Kind: "money", Method: "GET", URI: uri, Headers: apiHeaders(p, true)})
	}

	// Game and account APIs behind proxy routes (whole body inspected).
	q := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	lobby := []string{
		"/api/lobby/tables?" + q("games", "baccarat,roulette,blackjack", "currency", "EUR", "limit", "20"),
		"/api/lobby/tables?games=baccarat,dragon_tiger&sort=popular&min_bet=1,5,10",
		"/api/lobby/tables?category=live&providers=evo,pragmatic,ezugi&lang=en",
		"/api/lobby/tables?" + q("studio", "Riga 2", "lang", "ru", "fields", "id,name,min,max,seats"),
		"/api/lobby/featured?ids=bacc-07,roul-05,bj-vip-1",
		"/api/history?" + q("from", "2026-05-01", "to", "2026-05-02", "types", "bet,win,deposit,withdrawal", "page", "2"),
		"/api/history?from=2026-05-01T00:00:00Z&to=2026-05-01T23:59:59Z&types=bet,win",
		"/api/promotions?tags=weekend,reload,cashback&country=DE",
		"/api/promotions?" + q("tags", "vip,tournament", "lang", "fr", "q", "tournoi d'été"),
		"/api/tournaments?status=running,upcoming&game=baccarat",
		"/api/leaderboard?period=week&table=bacc-07&limit=50",
		"/api/rounds/" + "r-000417" + "?fields=result,cards,payouts",
		"/api/tables/bacc-07/stats?last=100&metrics=banker,player,tie,pairs",
		"/api/search?" + q("q", "Crazy Time"),
		"/api/search?" + q("q", "Monopoly Live & Dream Catcher"),
		"/api/search?" + q("q", "l'Évasion roulette 100%"),
		"/api/search?" + q("q", "баккара live"),
		"/api/search?" + q("q", "百家乐"),
		"/api/search?" + q("q", "\"lightning\" roulette"),
		"/api/search?" + q("q", "रूलेट"),
		"/api/search?" + q("q", "بلاك جاك"),
		"/api/search?" + q("q", "ルーレット"),
		"/api/search?q=speed+baccarat&page=1&per_page=24",
		"/api/notifications?unread=true&types=bonus,system,kyc",
		"/api/limits?kinds=deposit,loss,session",
		"/api/me",
		"/api/me/favourites?ids=bacc-07,dt-02,lightning-roul",
		"/api/i18n/messages?locale=pt-BR&ns=lobby,cashier,errors",
		"/api/config?platform=ios&version=5.12.3&features=hls,webrtc,chat",
	}
	for i := range 60 {
		p := pick(players)
		add(Request{Name: fmt.Sprintf("api-get-%03d", i), Kind: "proxy", Method: "GET", URI: lobby[i%len(lobby)], Headers: apiHeaders(p, true)})
	}
	for i := range 25 {
		p := pick(players)
		fields := []any{"nickname", pick(nicknames), "language", strings.SplitN(strings.SplitN(p.lang, ",", 2)[0], "-", 2)[0],
			"timezone", pick([]string{"Europe/Berlin", "America/Sao_Paulo", "Asia/Bangkok", "Asia/Kolkata", "Europe/Athens", "Asia/Jerusalem"})}
		if i%2 == 0 {
			fields = append(fields, "bio", pick(bios))
		}
		if i%3 == 0 {
			fields = append(fields, "marketing", map[string]bool{"email": i%2 == 0, "sms": false, "push": true})
		}
		add(Request{Name: fmt.Sprintf("profile-put-%03d", i), Kind: "proxy", Method: "PUT", URI: "/api/profile",
			Headers: apiHeaders(p, true, jsonCT), Body: jsonBody(fields...)})
	}
	for i := range 8 {
		p := pick(players)
		add(Request{Name: fmt.Sprintf("settings-patch-%03d", i), Kind: "proxy", Method: "PATCH", URI: "/api/profile/settings",
			Headers: apiHeaders(p, true, [2]string{"Content-Type", "application/merge-patch+json"}),
			Body:    jsonBody("sound", i%2 == 0, "chat_visible", true, "stream_quality", pick([]string{"auto", "720p", "480p"}), "preferred_player", pick([]string{"webrtc", "hls"}))})
	}
	for i := range 6 {
		p := pick(players)
		add(Request{Name: fmt.Sprintf("session-delete-%03d", i), Kind: "proxy", Method: "DELETE", URI: "/api/sessions/" + uuid(), Headers: apiHeaders(p, true)})
	}
	for i := range 30 {
		p := pick(players)
		t := pick(tables)
		add(Request{Name: fmt.Sprintf("chat-post-%03d", i), Kind: "proxy", Method: "POST", URI: "/api/tables/" + t + "/chat",
			Headers: apiHeaders(p, true, jsonCT), Body: jsonBody("text", chat[i%len(chat)], "client_msg_id", uuid())})
	}
	for i := range 5 {
		p := pick(players)
		add(Request{Name: fmt.Sprintf("token-refresh-%03d", i), Kind: "proxy", Method: "POST", URI: "/api/auth/refresh",
			Headers: apiHeaders(p, false, jsonCT), Body: jsonBody("refresh_token", base64.RawURLEncoding.EncodeToString([]byte(hexN(48))), "device_id", uuid())})
	}
	for i := range 6 {
		p := pick(players)
		add(Request{Name: fmt.Sprintf("cors-preflight-%03d", i), Kind: "proxy", Method: "OPTIONS", URI: pick([]string{"/api/bets", "/api/profile", "/cashier/deposit"}),
			Headers: [][2]string{{"Host", "play.edge.test"}, {"User-Agent", p.c.ua}, {"Accept", "*/*"}, {"Origin", "https://play.edge.test"},
				{"Access-Control-Request-Method", pick([]string{"POST", "PUT"})}, {"Access-Control-Request-Headers", "authorization,content-type,idempotency-key,traceparent"},
				{"Sec-Fetch-Mode", "cors"}}})
	}
	for i, path := range []string{"/", "/lobby", "/live/bacc-07", "/static/app.9f3c2a71.js", "/static/app.4be1c0d2.css", "/static/fonts/inter-var.woff2", "/favicon.ico", "/player.js", "/manifest.webmanifest", "/robots.txt"} {
		p := pick(players)
		h := apiHeaders(p, false)
		h[2] = [2]string{"Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"}
		add(Request{Name: fmt.Sprintf("page-%03d", i), Kind: "proxy", Method: "GET", URI: path, Headers: h})
	}

	// Live streams: WHIP from studios, WHEP and LL-HLS for players.
	for i := range 8 {
		t := tables[i%len(tables)]
		add(Request{Name: fmt.Sprintf("whip-%03d", i), Kind: "stream", Method: "POST", URI: "/live/" + t + "/whip",
			Headers: [][2]string{{"Host", "sea.edge.test"}, {"User-Agent", pick([]string{"OBS-Studio/31.0.0 (linux)", "GStreamer/1.24.2 whipclientsink", "Larix/1.3.10"})},
				{"Authorization", "Bearer studio-" + hexN(40)}, {"Content-Type", "application/sdp"}, {"Accept", "application/sdp"}},
			Body: sdpOffer(true)})
	}
	for i := range 12 {
		p := pick(players)
		t := pick(tables)
		add(Request{Name: fmt.Sprintf("whep-%03d", i), Kind: "stream", Method: "POST", URI: "/live/" + t + "/whep",
			Headers: apiHeaders(p, false, [2]string{"Content-Type", "application/sdp"}), Body: sdpOffer(false)})
	}
	for i := range 6 {
		p := pick(players)
		t := pick(tables)
		add(Request{Name: fmt.Sprintf("whep-trickle-%03d", i), Kind: "stream", Method: "PATCH", URI: "/live/" + t + "/whep/" + hexN(32),
			Headers: apiHeaders(p, false, [2]string{"Content-Type", "application/trickle-ice-sdpfrag"}, [2]string{"If-Match", `"` + hexN(16) + `"`}),
			Body: fmt.Sprintf("a=ice-ufrag:%s\r\na=ice-pwd:%s\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=candidate:%d 1 udp 2122260223 192.168.1.%d %d typ host generation 0\r\n",
				hexN(8), hexN(24), rng.IntN(1<<31), rng.IntN(250)+2, 50000+rng.IntN(10000))})
	}
	for i := range 4 {
		p := pick(players)
		add(Request{Name: fmt.Sprintf("whep-delete-%03d", i), Kind: "stream", Method: "DELETE", URI: "/live/" + pick(tables) + "/whep/" + hexN(32), Headers: apiHeaders(p, false)})
	}
	for i := range 30 {
		p := pick(players)
		t := pick(tables)
		base := "/live/" + t + "/hls/"
		msn, part := 400+rng.IntN(2000), rng.IntN(5)
		prefix := hexN(8)
		var uri string
		switch i % 6 {
		case 0:
			uri = base + "index.m3u8"
		case 1:
			uri = fmt.Sprintf("%svideo1_stream.m3u8?_HLS_msn=%d&_HLS_part=%d", base, msn, part)
		case 2:
			uri = fmt.Sprintf("%saudio2_stream.m3u8?_HLS_msn=%d&_HLS_part=%d&_HLS_skip=YES", base, msn, part)
		case 3:
			uri = fmt.Sprintf("%s%s_video1_part%d.mp4", base, prefix, msn*4+part)
		case 4:
			uri = fmt.Sprintf("%s%s_video1_seg%d.mp4", base, prefix, msn)
		case 5:
			uri = fmt.Sprintf("%s%s_video1_init.mp4", base, prefix)
		}
		h := apiHeaders(p, false)
		h[2] = [2]string{"Accept", "*/*"}
		add(Request{Name: fmt.Sprintf("hls-%03d", i), Kind: "stream", Method: "GET", URI: uri, Headers: h})
	}
	for i := range 4 {
		p := pick(players)
		add(Request{Name: fmt.Sprintf("descriptor-%03d", i), Kind: "stream", Method: "GET", URI: "/live/" + pick(tables) + "/play", Headers: apiHeaders(p, false)})
	}

	platform(add, q)

	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, r := range reqs {
		if err := enc.Encode(r); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if err := w.Flush(); err != nil || f.Close() != nil {
		fmt.Fprintln(os.Stderr, "writing", *out, err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "%d requests written to %s\n", len(reqs), *out)
}

// platform adds the rest of a betting platform's API: odds and markets,
// the games lobby, search, support tickets quoting the app's own words,
// promotions, bet history, KYC documents, responsible-gambling limits,
// withdrawals and favourites. Appended last, so the requests above keep
// their bytes.
func platform(add func(Request), q func(kv ...string) string) {
	jsonCT := [2]string{"Content-Type", "application/json"}
	sports := []string{"football", "tennis", "basketball", "ice_hockey", "cricket", "esports"}
	leagues := []string{"premier-league", "bundesliga", "la-liga", "serie-a", "atp-madrid", "nba", "nhl", "ipl", "cs2-major"}
	markets := []string{"1x2", "ou_2.5", "btts", "handicap_-1", "correct_score", "double_chance", "draw_no_bet", "first_goalscorer"}
	for i := range 30 {
		p := pick(players)
		var uri string
		switch i % 3 {
		case 0:
			uri = "/api/sports/events?" + q("sport", pick(sports), "league", pick(leagues), "date", fmt.Sprintf("2026-05-%02d", rng.IntN(28)+1),
				"markets", strings.Join([]string{pick(markets), pick(markets)}, ","), "live", pick([]string{"true", "false"}))
		case 1:
			uri = fmt.Sprintf("/api/markets/m-%07d/odds?format=%s&currency=%s", rng.IntN(9999999), pick([]string{"decimal", "fractional", "american"}), pick(currencies))
		case 2:
			uri = fmt.Sprintf("/api/events/e-%06d/markets?group=%s&include=selections,limits", rng.IntN(999999), pick([]string{"main", "goals", "corners", "cards", "player_props"}))
		}
		add(Request{Name: fmt.Sprintf("odds-%03d", i), Kind: "proxy", Method: "GET", URI: uri, Headers: apiHeaders(p, i%2 == 0)})
	}
	providers := []string{"evolution", "pragmatic-play", "netent", "play-n-go", "hacksaw", "nolimit-city", "ezugi"}
	for i := range 20 {
		p := pick(players)
		uri := "/api/games?" + q("category", pick([]string{"slots", "live-casino", "table-games", "jackpots", "new", "megaways"}),
			"provider", pick(providers), "sort", pick([]string{"popular", "new", "a-z", "rtp"}), "page", fmt.Sprint(rng.IntN(5)+1), "per_page", "48")
		if i%4 == 0 {
			uri += "&features=" + url.QueryEscape("bonus_buy,free_spins") + "&min_rtp=96.5"
		}
		add(Request{Name: fmt.Sprintf("games-%03d", i), Kind: "proxy", Method: "GET", URI: uri, Headers: apiHeaders(p, false)})
	}
	searches := []string{"Man Utd v Liverpool", "both teams to score", "over 2.5 goals", "Real Madrid - Barcelona", "O'Neill",
		"Book of Dead", "Gates of Olympus 1000", "Sweet Bonanza (Xmas)", "1st half & 2nd half", "Djoković", "Müller anytime scorer",
		"Lightning Roulette", "Crazy Time: live", "Mbappé to score 2+", "ставки на теннис", "足球", "cash out", "acca boost 10%",
		"select your bet builder", "\"Monopoly Live\""}
	for i := range 20 {
		p := pick(players)
		add(Request{Name: fmt.Sprintf("search-%03d", i), Kind: "proxy", Method: "GET",
			URI: "/api/search?" + q("q", searches[i%len(searches)], "scope", pick([]string{"all", "sports", "casino"}), "limit", "10"), Headers: apiHeaders(p, false)})
	}
	// Support tickets: players copy what the app told them, quotes,
	// dashes and all.
	messages := []string{
		"I clicked 'Cash out' and it said: Selection -- suspended",
		"Bet rejected: \"Odds changed\" -- please accept new odds (1.95 -> 2.10). Why?",
		"Why was my bet voided? It said 'Market closed; stake returned'",
		"I'd like to know why my withdrawal of 100 EUR is 'pending' for 3 days",
		"My name is O'Connor and the form says 'invalid characters in name' -- can you update it to O'Connor?",
		"why does the app say 'Union of Bets' when I open the acca builder? also 'select from list' is empty",
		"The 'Union of Bets' screen: select from the list of legs -- nothing shows",
		"Hello, I'd like to self-exclude for 6 months; please close my account & delete my card details",
		"I was charged twice: order 'DEP-2026-05-01-0042' and 'DEP-2026-05-01-0043' -- please refund one of them",
		"The chat says: /bet 10 banker -- and then 'command not found'",
		"Copy-paste from the app: Selection suspended (code: SEL_SUSP) -- 'Your bet has not been placed'; retry?",
		"It shows 'null' as my balance and then 'NaN' -- and the page said Session expired",
		"Select Deposit -> choose 'Card' -> enter amount -> 'Confirm' -- nothing happens",
		"Ich habe auf 'Auszahlen' geklickt, aber es kommt: 'Auswahl gesperrt' – was nun?",
		"J'ai cliqué sur « Encaisser » et ça affiche : Sélection -- suspendue",
		"Нажал 'Кэшаут', пишет: 'Выбор приостановлен' -- что делать?",
		"The free bet from 'Bet £10, get £30' wasn't credited. T&Cs say min odds 1/2 (1.5) -- mine were 1.80",
		"where's my payout? 5/1 each-way on 'Horse #3', the result page says 'win or place'",
	}
	for i := range 36 {
		p := pick(players)
		fields := []any{"category", pick([]string{"betting", "payments", "account", "bonus", "technical"}), "subject",
			pick([]string{"Cash out not working", "Withdrawal pending", "Bonus not credited", "Bet voided?", "Change my name", "Charged twice", "App error"}),
			"message", messages[i%len(messages)], "locale", strings.SplitN(p.lang, ",", 2)[0]}
		if i%3 == 0 {
			fields = append(fields, "bet_ref", fmt.Sprintf("B-%08d", rng.IntN(99999999)))
		}
		if i%4 == 1 {
			fields = append(fields, "attachments", []map[string]any{{"name": pick([]string{"screenshot 2026-05-01 at 21.14.png", "IMG_4411.JPG", "bank statement (May).pdf"}),
				"size": 20000 + rng.IntN(900000), "type": pick([]string{"image/png", "image/jpeg", "application/pdf"})}})
		}
		add(Request{Name: fmt.Sprintf("support-%03d", i), Kind: "proxy", Method: "POST", URI: "/api/support/tickets",
			Headers: apiHeaders(p, true, jsonCT), Body: jsonBody(fields...)})
	}
	// Promotions: the banner's wording comes back in the claim.
	banners := []string{"Bet £10, get £30 in free bets -- T&Cs apply; 18+ only", "Deposit £20, get 100% up to £200 + 50 free spins on 'Book of Dead'",
		"Weekend Reload: 25% back (max. €50) -- 'sports' & 'casino' only", "Acca Boost: up to 50% more on 5+ folds", "Refer a friend & get €20 (when they bet €20)",
		"Early payout: if your team goes 2 goals up, we pay out!", "Price boost: 'Kane to score 2+' was 5/1 now 7/1"}
	for i := range 24 {
		p := pick(players)
		if i%3 == 0 {
			add(Request{Name: fmt.Sprintf("promotions-%03d", i), Kind: "proxy", Method: "GET",
				URI: fmt.Sprintf("/api/promotions/promo-%04d?lang=%s&include=terms", rng.IntN(9999), strings.SplitN(p.lang, "-", 2)[0]), Headers: apiHeaders(p, true)})
			continue
		}
		add(Request{Name: fmt.Sprintf("promotions-%03d", i), Kind: "proxy", Method: "POST", URI: fmt.Sprintf("/api/promotions/promo-%04d/claim", rng.IntN(9999)),
			Headers: apiHeaders(p, true, jsonCT), Body: jsonBody("code", pick([]string{"WELCOME100", "RELOAD25", "ACCA50", "FRIEND20", ""}),
				"accept_terms", true, "terms_version", fmt.Sprintf("2026.%d", rng.IntN(5)+1), "source", banners[i%len(banners)])})
	}
	for i := range 25 {
		p := pick(players)
		from := fmt.Sprintf("2026-0%d-%02d", rng.IntN(4)+1, rng.IntN(28)+1)
		uri := "/api/bets/history?" + q("from", from, "to", "2026-05-31", "status", pick([]string{"settled", "open", "settled,void", "won,lost,cashed_out"}),
			"sort", pick([]string{"-placed_at", "placed_at", "-stake"}), "page", fmt.Sprint(rng.IntN(4)+1))
		if i%3 == 0 {
			uri += "&sport=" + pick(sports) + "&min_stake=5.00&max_odds=10.5"
		}
		if i%5 == 0 {
			uri += "&q=" + url.QueryEscape(pick([]string{"Liverpool", "O'Neill", "acca", "bet builder: 3 legs"}))
		}
		add(Request{Name: fmt.Sprintf("history-%03d", i), Kind: "proxy", Method: "GET", URI: uri, Headers: apiHeaders(p, true)})
	}
	for i := range 16 {
		p := pick(players)
		add(Request{Name: fmt.Sprintf("kyc-%03d", i), Kind: "proxy", Method: "POST", URI: "/api/kyc/documents",
			Headers: apiHeaders(p, true, jsonCT), Body: jsonBody("type", pick([]string{"passport", "id_card", "driving_licence", "proof_of_address", "bank_statement"}),
				"country", pick([]string{"DE", "GB", "FR", "BR", "SE", "PL", "IN"}), "side", pick([]string{"front", "back"}),
				"file_name", pick([]string{"passport scan (1).jpg", "IMG_20260501_101522.jpg", "utility bill - May 2026.pdf", "Personalausweis_Rückseite.png", "relevé d'identité.pdf"}),
				"size", 50000+rng.IntN(4000000), "mime", pick([]string{"image/jpeg", "image/png", "application/pdf"}),
				"issued", fmt.Sprintf("20%02d-%02d-%02d", 15+rng.IntN(10), rng.IntN(12)+1, rng.IntN(28)+1), "expires", fmt.Sprintf("20%02d-%02d-%02d", 27+rng.IntN(8), rng.IntN(12)+1, rng.IntN(28)+1),
				"upload_id", uuid())})
	}
	reasons := []string{"", "I want to keep it to a weekly budget", "Spent too much last month -- lowering it", "Taking a break for exams", "my partner asked me to set it"}
	for i := range 16 {
		p := pick(players)
		add(Request{Name: fmt.Sprintf("limits-%03d", i), Kind: "proxy", Method: "PUT", URI: "/api/limits/" + pick([]string{"deposit", "loss", "wager", "session"}),
			Headers: apiHeaders(p, true, jsonCT), Body: jsonBody("period", pick([]string{"day", "week", "month"}), "amount", amount(), "currency", pick(currencies),
				"reason", reasons[i%len(reasons)], "effective", pick([]string{"now", "next_period"}))})
	}
	for i := range 20 {
		p := pick(players)
		if i%4 == 0 {
			add(Request{Name: fmt.Sprintf("withdraw-%03d", i), Kind: "proxy", Method: "GET", URI: "/api/cashier/methods?" + q("country", pick([]string{"DE", "GB", "BR"}), "currency", pick(currencies), "direction", "withdrawal"), Headers: apiHeaders(p, true)})
			continue
		}
		add(Request{Name: fmt.Sprintf("withdraw-%03d", i), Kind: "proxy", Method: "POST", URI: "/api/cashier/withdrawals",
			Headers: apiHeaders(p, true, jsonCT, [2]string{"Idempotency-Key", uuid()}), Body: jsonBody("amount", amount(), "currency", pick(currencies),
				"method", pick([]string{"card", "bank_transfer", "e_wallet"}), "method_id", "pm_"+hexN(14), "note", pick([]string{"", "rent money", "Winnings from Saturday's acca :)", "to my 'savings' account"}))})
	}
	for i := range 16 {
		p := pick(players)
		ids := []string{pick(tables), pick(tables), fmt.Sprintf("e-%06d", rng.IntN(999999))}
		if i%2 == 0 {
			add(Request{Name: fmt.Sprintf("favourites-%03d", i), Kind: "proxy", Method: "PUT", URI: "/api/me/favourites", Headers: apiHeaders(p, true, jsonCT),
				Body: jsonBody("ids", ids, "notify", map[string]bool{"kick_off": true, "goals": i%4 == 0, "odds_drop": false})})
			continue
		}
		add(Request{Name: fmt.Sprintf("favourites-%03d", i), Kind: "proxy", Method: "PATCH", URI: "/api/me/settings", Headers: apiHeaders(p, true, [2]string{"Content-Type", "application/merge-patch+json"}),
			Body: jsonBody("odds_format", pick([]string{"decimal", "fractional", "american"}), "quick_bet_stake", amount(), "theme", pick([]string{"dark", "light", "system"}),
				"reality_check_min", pick([]int{30, 60, 90}))})
	}
}

// sdpOffer is a browser- or encoder-style offer: H.264 + Opus, BUNDLE,
// DTLS fingerprint, ICE credentials and host candidates. A publisher's
// offer sends, a viewer's receives.
func sdpOffer(publish bool) string {
	dir := "recvonly"
	if publish {
		dir = "sendonly"
	}
	var fp []string
	for range 32 {
		fp = append(fp, strings.ToUpper(hexN(2)))
	}
	ufrag, pwd := hexN(8), hexN(24)
	ssrcA, ssrcV := rng.Uint32(), rng.Uint32()
	cname := hexN(16)
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=- %d 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS\r\n", rng.Int64N(1<<62))
	fmt.Fprintf(&b, "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n")
	fmt.Fprintf(&b, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\na=ice-options:trickle\r\na=fingerprint:sha-256 %s\r\na=setup:actpass\r\na=mid:0\r\n", ufrag, pwd, strings.Join(fp, ":"))
	fmt.Fprintf(&b, "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\na=extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n")
	fmt.Fprintf(&b, "a=%s\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n", dir)
	fmt.Fprintf(&b, "a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n")
	if publish {
		fmt.Fprintf(&b, "a=msid:- %s\r\na=ssrc:%d cname:%s\r\n", uuid(), ssrcA, cname)
	}
	fmt.Fprintf(&b, "m=video 9 UDP/TLS/RTP/SAVPF 102 103 106 107\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n")
	fmt.Fprintf(&b, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\na=ice-options:trickle\r\na=fingerprint:sha-256 %s\r\na=setup:actpass\r\na=mid:1\r\n", ufrag, pwd, strings.Join(fp, ":"))
	fmt.Fprintf(&b, "a=extmap:14 urn:ietf:params:rtp-hdrext:toffset\r\na=extmap:13 urn:3gpp:video-orientation\r\na=extmap:4 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n")
	fmt.Fprintf(&b, "a=%s\r\na=rtcp-mux\r\na=rtcp-rsize\r\n", dir)
	fmt.Fprintf(&b, "a=rtpmap:102 H264/90000\r\na=rtcp-fb:102 goog-remb\r\na=rtcp-fb:102 transport-cc\r\na=rtcp-fb:102 ccm fir\r\na=rtcp-fb:102 nack\r\na=rtcp-fb:102 nack pli\r\n")
	fmt.Fprintf(&b, "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\na=rtpmap:103 rtx/90000\r\na=fmtp:103 apt=102\r\n")
	fmt.Fprintf(&b, "a=rtpmap:106 H264/90000\r\na=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\na=rtpmap:107 rtx/90000\r\na=fmtp:107 apt=106\r\n")
	if publish {
		fmt.Fprintf(&b, "a=msid:- %s\r\na=ssrc:%d cname:%s\r\n", uuid(), ssrcV, cname)
	}
	return b.String()
}
