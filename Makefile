# hedge — the entry points people remember.
#   make run    build and run the embedded two-region demo
#   make test   install what the tests need, then lint and run every test with -race
#   make bench  Go benchmarks plus the end-to-end comparison with nginx
#   make lint   gofmt, go vet, staticcheck (pinned as a Go tool)
#   make build  build bin/hedge

GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
BIN     := bin/hedge

# Debian packages the tests and benchmarks use; installed only when missing.
TEST_DEBS  := curl ca-certificates redis-server
BENCH_DEBS := nginx-light curl ca-certificates util-linux

.PHONY: build run test lint bench deps bench-deps fuzz clean

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) .

run: build
	./$(BIN) serve

deps:
	@./.ci/debs $(TEST_DEBS)

bench-deps:
	@./.ci/debs $(BENCH_DEBS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

test: deps lint build
	$(GO) test -race -count=1 -timeout 20m ./...

bench: bench-deps build
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./gateway/... | tee bin/bench-go.txt
	$(GO) run ./e2e/bench -hedge ./$(BIN)

# A longer fuzzing pass over the parsers of untrusted input.
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 60s ./configs/
	for f in FuzzClientAddr FuzzForwarded FuzzTraceparent FuzzIdempotencyKey; do \
		$(GO) test -run '^$$' -fuzz $$f -fuzztime 30s ./gateway/httpx/ || exit 1; done

clean:
	rm -rf bin .hedge
