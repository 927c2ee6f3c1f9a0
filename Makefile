# hedge — the entry points people remember.
#   make run    build and run the embedded two-region demo
#   make test   install what the tests need, then lint and run every test with -race
#   make bench  Go benchmarks plus the end-to-end comparison with nginx
#   make lint   gofmt, go mod tidy -diff, go vet, staticcheck (pinned as a Go tool)
#   make build  build bin/hedge
#   make drill  rehearse a region loss: every scenario on a two-region deployment of processes

GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
BIN     := bin/hedge
# hedge's Core Rule Set engine runs its regular expressions on RE2 through
# cgo (Debian's libre2-dev); GOTAGS= builds the pure-Go engine instead.
GOTAGS  ?= re2_cgo

# Debian packages the tests and benchmarks use; installed only when missing.
TEST_DEBS  := curl ca-certificates redis-server bind9-dnsutils knot-dnsutils knot libre2-dev \
              ffmpeg chromium
BENCH_DEBS := nginx-light curl ca-certificates util-linux dnsperf gdnsd knot redis-server wrk \
              libnginx-mod-http-modsecurity modsecurity-crs libre2-dev nghttp2-client

.PHONY: build run test lint bench deps bench-deps fuzz clean load web-deps e2e-deps drill

build: web-deps
	$(GO) build -tags '$(GOTAGS)' -ldflags '$(LDFLAGS)' -o $(BIN) .

run: build
	./$(BIN) serve

deps:
	@./.ci/debs $(TEST_DEBS)

bench-deps:
	@./.ci/debs $(BENCH_DEBS)

# hls.js for the embedded player, at the version stream/player/package-lock.json
# pins, copied into the embed directory. The copy is committed so that plain
# `go build` works from a fresh clone without node; a test checks its version.
HLSJS := stream/player/node_modules/hls.js/dist/hls.min.js
$(HLSJS): stream/player/package-lock.json
	@command -v npm >/dev/null || ./.ci/debs nodejs npm
	cd stream/player && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@

web-deps: $(HLSJS)
	@cmp -s $(HLSJS) stream/player/web/hls.min.js || cp $(HLSJS) stream/player/web/hls.min.js

# playwright-core drives Debian's Chromium in e2e/stream; no browser is downloaded.
PLAYWRIGHT := e2e/stream/node_modules/playwright-core/package.json
$(PLAYWRIGHT): e2e/stream/package-lock.json
	@command -v npm >/dev/null || ./.ci/debs nodejs npm
	cd e2e/stream && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@

e2e-deps: $(PLAYWRIGHT)

lint: deps
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }
	$(GO) vet -tags '$(GOTAGS)' ./...
	$(GO) tool staticcheck -tags '$(GOTAGS)' ./...

test: deps lint build e2e-deps
	HEDGE_REQUIRE_TOOLS=1 $(GO) test -tags '$(GOTAGS)' -race -count=1 -timeout 20m ./...
	@# The go-ftw test profile exists only in binaries built with hedge_ftw.
	$(GO) test -tags '$(GOTAGS) hedge_ftw' -race -count=1 ./waf/crs/
	@# Heavy Core Rule Set suites, without -race (it slows the rule engine tenfold).
	$(GO) test -tags '$(GOTAGS)' -count=1 -run 'Corpus' ./waf/ ./waf/crs/

bench: bench-deps build
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./gateway/... | tee bin/bench-go.txt
	@# The argument limits: counting cost, and the worst request the defaults admit vs a browser GET (≤ 10×).
	$(GO) test -tags '$(GOTAGS)' -run '^$$' -bench 'ArgTally|WorstCaseVsGET' -benchmem ./waf/ | tee bin/bench-waf-limits.txt
	$(GO) run ./e2e/bench -hedge ./$(BIN)
	$(GO) run ./e2e/moneybench -hedge ./$(BIN)
	$(GO) run ./e2e/h2bench -hedge ./$(BIN)
	$(GO) run ./e2e/wafbench -hedge ./$(BIN)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./dnsfail/ | tee bin/bench-dns-go.txt
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./stream/ ./stream/hls/ | tee bin/bench-stream-go.txt
	$(GO) run ./dnsfail/dnsbench -hedge ./$(BIN) | tee bin/bench-dns.txt
	$(GO) run ./e2e/streambench -hedge ./$(BIN)

# Load test of the demo's money routes with vegeta (pinned in go.mod's tool
# block; built to bin/vegeta so that the attack starts at once and receives
# Ctrl-C itself): the demo runs in a temporary directory, `hedge loadgen` feeds
# vegeta bets, retries and balance reads of 100 test players at LOAD_RATE
# for LOAD_DURATION, half to each edge by its own name (sea.edge.test,
# eu.edge.test; TLS verified against the demo's CA), from LOAD_ADDR (the
# address the demo's per-address rate limit exempts) on at most 200
# connections per edge (its max_conns_per_ip is 256),
# vegeta reports, and `hedge loadgen -verify` checks every acknowledged bet
# against what the ledger simulators applied. The demo is stopped by PID.
LOAD_RATE     ?= 500
LOAD_DURATION ?= 20s
LOAD_ADDR     ?= 127.0.0.99

load: build
	$(GO) build -o bin/vegeta github.com/tsenart/vegeta/v12
	@hedge=$$(pwd)/$(BIN); vegeta=$$(pwd)/bin/vegeta; tmp=$$(mktemp -d); pid=; \
	alive() { st=$$(cut -d' ' -f3 /proc/$$pid/stat 2>/dev/null); [ -n "$$st" ] && [ "$$st" != Z ]; }; \
	stop() { [ -n "$$pid" ] || return 0; kill -TERM $$pid 2>/dev/null; i=0; \
	  while [ $$i -lt 150 ] && alive; do sleep 0.1; i=$$((i+1)); done; kill -KILL $$pid 2>/dev/null; wait $$pid 2>/dev/null; pid=; }; \
	trap 'stop; rm -rf "$$tmp"' EXIT; trap 'exit 130' INT TERM; \
	for a in 127.0.0.11:9090 127.0.0.12:9090 127.0.0.21:7000 127.0.0.22:7000; do \
	  if curl -s -o /dev/null --max-time 1 http://$$a/healthz; then \
	    echo "load: something already answers on $$a (a demo from make run?); stop it first"; exit 1; fi; done; \
	(cd $$tmp && exec $$hedge serve) >$$tmp/demo.log 2>&1 & pid=$$!; \
	ca=$$tmp/.hedge/ca/root.crt; tok=$$($$hedge token -sub load-ready); ready=; i=0; \
	while [ -z "$$ready" ] && [ $$i -lt 300 ]; do sleep 0.1; i=$$((i+1)); \
	  if ! alive; then echo "load: the demo exited:"; cat $$tmp/demo.log; exit 1; fi; \
	  ready=1; for edge in 127.0.0.11 127.0.0.12; do \
	    curl -sf -o /dev/null --max-time 1 http://$$edge:9090/healthz && \
	    curl -sf -o /dev/null --max-time 1 --cacert $$ca --resolve play.edge.test:8443:$$edge \
	      -H "Authorization: Bearer $$tok" https://play.edge.test:8443/api/wallet/balance || ready=; done; done; \
	if [ -z "$$ready" ]; then echo "load: the demo did not become ready in 30s:"; tail -20 $$tmp/demo.log; exit 1; fi; \
	echo "load: demo (PID $$pid) ready in $$tmp; vegeta at $(LOAD_RATE)/s for $(LOAD_DURATION) against both edges"; \
	$$hedge loadgen -count 0 -edge https://sea.edge.test:8443,https://eu.edge.test:8443 | \
	  $$vegeta attack -lazy -format=json -rate=$(LOAD_RATE)/s -duration=$(LOAD_DURATION) -root-certs $$ca -laddr $(LOAD_ADDR) -max-connections 200 \
	  -connect-to sea.edge.test:8443:127.0.0.11:8443 -connect-to eu.edge.test:8443:127.0.0.12:8443 \
	  -output $$tmp/results.bin || exit 1; \
	$$vegeta report $$tmp/results.bin | awk '/^Error Set:/ { e = 1 } e && ++n > 11 { m++; next } { print } END { if (m) print "… and " m " more" }'; \
	echo; curl -s http://127.0.0.11:9090/metrics | awk '/^hedge_requests_total/ && /route="(bets|balance)"/ { \
	  match($$0, /node="[^"]*"/); n[substr($$0, RSTART + 6, RLENGTH - 7)] += $$NF } \
	  END { for (k in n) printf "edge          %s: %d money requests answered\n", k, n[k] }' | sort; \
	$$vegeta encode -to json $$tmp/results.bin | $$hedge loadgen -verify -; rc=$$?; \
	stop; exit $$rc

# The full rehearsal of a region loss (README "Rehearsing a region loss"):
# every scenario with synchronous replication and automatic promotion, then
# region-down with four-eyes promotion and with asynchronous replication
# (both promotions), each on a fresh two-region deployment in network
# namespaces (DRILL_FLAGS=--loopback without root). Reports, JSON and SVG
# timelines go to bin/drill/<variant>/<scenario>/; it fails when any run does.
DRILL_FLAGS ?=
drill: build
	@command -v redis-server >/dev/null || ./.ci/debs redis-server
	rm -rf bin/drill
	@rc=0; \
	./$(BIN) drill -scenario all -out bin/drill/sync-auto $(DRILL_FLAGS) || rc=1; \
	./$(BIN) drill -scenario region-down -promotion four-eyes -out bin/drill/sync-four-eyes $(DRILL_FLAGS) || rc=1; \
	./$(BIN) drill -scenario region-down -replication async -out bin/drill/async-auto $(DRILL_FLAGS) || rc=1; \
	./$(BIN) drill -scenario region-down -replication async -promotion four-eyes -out bin/drill/async-four-eyes $(DRILL_FLAGS) || rc=1; \
	exit $$rc

# A longer fuzzing pass over the parsers of untrusted input.
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 60s ./configs/
	$(GO) test -run '^$$' -fuzz FuzzServeDNS -fuzztime 60s ./dnsfail/
	for f in FuzzClientAddr FuzzForwarded FuzzTraceparent FuzzIdempotencyKey; do \
		$(GO) test -run '^$$' -fuzz $$f -fuzztime 30s ./internal/httpx/ || exit 1; done
	$(GO) test -tags '$(GOTAGS)' -run '^$$' -fuzz FuzzMoneyRouteHeaders -fuzztime 60s ./gateway/

clean:
	rm -rf bin .hedge
