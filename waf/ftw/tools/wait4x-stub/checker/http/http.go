// Package http checks that an HTTP endpoint answers.
package http

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	nethttp "net/http"
	"regexp"
	"strings"
	"time"
)

// Defaults used by go-ftw for its flag help texts.
const (
	DefaultConnectionTimeout     = 3 * time.Second
	DefaultInsecureSkipTLSVerify = false
	DefaultNoRedirect            = false
)

// ErrUnsupported is returned for expectations this stub does not implement
// (JSON and XPath body expectations).
var ErrUnsupported = errors.New("wait4x stub: expectation not supported")

// HTTP is a readiness check of one URL.
type HTTP struct {
	address    string
	status     int
	bodyRegex  string
	bodyJSON   string
	bodyXPath  string
	header     string
	timeout    time.Duration
	insecure   bool
	noRedirect bool
}

// Option configures an HTTP check.
type Option func(*HTTP)

// New returns a check of address.
func New(address string, opts ...Option) *HTTP {
	h := &HTTP{address: address, timeout: DefaultConnectionTimeout}
	for _, o := range opts {
		o(h)
	}
	return h
}

// WithExpectStatusCode requires this status code (0: any).
func WithExpectStatusCode(code int) Option { return func(h *HTTP) { h.status = code } }

// WithExpectBodyRegex requires the body to match the expression.
func WithExpectBodyRegex(re string) Option { return func(h *HTTP) { h.bodyRegex = re } }

// WithExpectBodyJSON is accepted but unsupported when non-empty.
func WithExpectBodyJSON(path string) Option { return func(h *HTTP) { h.bodyJSON = path } }

// WithExpectBodyXPath is accepted but unsupported when non-empty.
func WithExpectBodyXPath(path string) Option { return func(h *HTTP) { h.bodyXPath = path } }

// WithExpectHeader requires a header "Name" or "Name=regexp".
func WithExpectHeader(header string) Option { return func(h *HTTP) { h.header = header } }

// WithTimeout bounds one probe.
func WithTimeout(d time.Duration) Option { return func(h *HTTP) { h.timeout = d } }

// WithInsecureSkipTLSVerify skips certificate verification.
func WithInsecureSkipTLSVerify(skip bool) Option { return func(h *HTTP) { h.insecure = skip } }

// WithNoRedirect stops at the first redirect.
func WithNoRedirect(no bool) Option { return func(h *HTTP) { h.noRedirect = no } }

// Identity returns the checked URL.
func (h *HTTP) Identity() (string, error) { return h.address, nil }

// Check probes the URL once.
func (h *HTTP) Check(ctx context.Context) error {
	if h.bodyJSON != "" || h.bodyXPath != "" {
		return ErrUnsupported
	}
	client := &nethttp.Client{
		Timeout: h.timeout,
		Transport: &nethttp.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: h.insecure}, //nolint:gosec // operator's choice
		},
	}
	if h.noRedirect {
		client.CheckRedirect = func(*nethttp.Request, []*nethttp.Request) error { return nethttp.ErrUseLastResponse }
	}
	req, err := nethttp.NewRequestWithContext(ctx, nethttp.MethodGet, h.address, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if h.status != 0 && resp.StatusCode != h.status {
		return fmt.Errorf("status %d, want %d", resp.StatusCode, h.status)
	}
	if h.bodyRegex != "" {
		ok, err := regexp.Match(h.bodyRegex, body)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("body does not match %q", h.bodyRegex)
		}
	}
	if h.header != "" {
		name, pattern, hasPattern := strings.Cut(h.header, "=")
		v := resp.Header.Values(name)
		if len(v) == 0 {
			return fmt.Errorf("header %q missing", name)
		}
		if hasPattern {
			ok, err := regexp.MatchString(pattern, strings.Join(v, ", "))
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("header %q does not match %q", name, pattern)
			}
		}
	}
	return nil
}
