// Package albedo is the backend the Core Rule Set's regression tests are
// written against (CRS calls it "albedo"): any request is answered 200 with
// an empty body, except POST /reflect, whose JSON body says what to answer —
// status, headers and body — so that the RESPONSE-* tests can make the
// upstream return an SQL error page or a web shell for the response rules to
// find. Like the original (a net/http server), it sniffs Content-Type from
// the body when the specification sets none.
package albedo

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"

	"golang.org/x/net/http/httpguts"
)

// MaxSpecBytes bounds the body of a /reflect request.
const MaxSpecBytes = 1 << 20

// Spec is the body of POST /reflect.
type Spec struct {
	// Status is the status code to answer, 100..599; 0 means 200.
	Status int `json:"status"`
	// Headers are added to the response. Names or values that HTTP does not
	// allow are dropped.
	Headers map[string]string `json:"headers"`
	// Body is the response body.
	Body string `json:"body"`
	// EncodedBody is the body in standard base64, used when Body is empty.
	EncodedBody string `json:"encodedBody"`
	// LogMessage is passed to the handler's log function, to tie a request to
	// a test.
	LogMessage string `json:"logMessage"`
}

// Handler answers like albedo. logf, if not nil, receives each reflect
// request's log message.
func Handler(logf func(format string, args ...any)) http.Handler {
	mux := http.NewServeMux()
	reflect := func(w http.ResponseWriter, r *http.Request) { serveReflect(w, r, logf) }
	mux.HandleFunc("POST /reflect", reflect)
	mux.HandleFunc("POST /reflect/", reflect)
	mux.HandleFunc("GET /capabilities", serveCapabilities)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// Drain so the connection can be reused; the answer is an empty 200.
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, MaxSpecBytes))
	})
	return mux
}

// ParseSpec decodes and checks a /reflect body and returns the response body
// it asks for.
func ParseSpec(data []byte) (Spec, []byte, error) {
	var s Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return s, nil, fmt.Errorf("albedo: invalid JSON in request body: %w", err)
	}
	if s.Status != 0 && (s.Status < 100 || s.Status > 599) {
		return s, nil, fmt.Errorf("albedo: invalid status code %d", s.Status)
	}
	body := []byte(s.Body)
	if s.Body == "" && s.EncodedBody != "" {
		b, err := base64.StdEncoding.DecodeString(s.EncodedBody)
		if err != nil {
			return s, nil, fmt.Errorf("albedo: invalid base64 in encodedBody: %w", err)
		}
		body = b
	}
	return s, body, nil
}

func serveReflect(w http.ResponseWriter, r *http.Request, logf func(string, ...any)) {
	data, err := io.ReadAll(io.LimitReader(r.Body, MaxSpecBytes+1))
	if err == nil && len(data) > MaxSpecBytes {
		err = fmt.Errorf("albedo: specification larger than %d bytes", MaxSpecBytes)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	spec, body, err := ParseSpec(data)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if spec.LogMessage != "" && logf != nil {
		logf("albedo: %s", spec.LogMessage)
	}
	// Sorted so that a response is the same bytes every time.
	names := make([]string, 0, len(spec.Headers))
	for n := range spec.Headers {
		names = append(names, n)
	}
	sort.Strings(names)
	h := w.Header()
	for _, n := range names {
		v := spec.Headers[n]
		if httpguts.ValidHeaderFieldName(n) && httpguts.ValidHeaderFieldValue(v) {
			h.Add(n, v)
		}
	}
	// net/http would sniff the type while writing the body; doing it here
	// puts the same bytes on the wire and lets a middleware in front of the
	// handler (Coraza's, in wafref) see the type it decides by.
	if len(body) > 0 && h.Get("Content-Type") == "" {
		h.Set("Content-Type", http.DetectContentType(body))
	}
	status := spec.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	if len(body) > 0 {
		_, _ = w.Write(body)
	}
}

func serveCapabilities(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"endpoints":[{"path":"/*","methods":["any"]},{"path":"/capabilities","methods":["GET"]},{"path":"/reflect","methods":["POST"]}]}`)
}
