// Package fetch asks other processes for JSON and posts JSON to them: the
// ledger directory asks its writers' roles and posts promotions, a writer
// posts bets to its replicas and a replica asks its writer's role,
// loadgen's verifier and the drill ask the simulators' applied bets.
// Timeouts stay with the caller (its context and client); what differs
// between callers is only what they call the answer when it is not 200 OK,
// so that is a typed error they can word.
package fetch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// StatusError is JSON's error for an answer other than 200 OK.
type StatusError struct {
	URL    string
	Code   int
	Status string // the status line's text, as "404 Not Found"
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("GET %s answered %d", e.URL, e.Code)
}

// JSON GETs url with client and decodes the 200 OK answer into v, reading
// at most limit bytes of the body (limit <= 0: all of it). Errors from
// building or sending the request and from decoding are returned as they
// are; an answer other than 200 OK is a *StatusError.
func JSON(ctx context.Context, client *http.Client, url string, limit int64, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// A short refusal read to its end keeps the connection for the
		// next probe.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return &StatusError{URL: url, Code: resp.StatusCode, Status: resp.Status}
	}
	var body io.Reader = resp.Body
	if limit > 0 {
		body = io.LimitReader(body, limit)
	}
	return json.NewDecoder(body).Decode(v)
}

// PostJSON posts v, encoded as JSON, to url with client, with token as a
// bearer token unless it is empty, and returns the answer's status code
// and its body, at most limit bytes of it. Errors are encoding v, building
// or sending the request; reading the body is best effort.
func PostJSON(ctx context.Context, client *http.Client, url, token string, v any, limit int64) (int, []byte, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, limit))
	return resp.StatusCode, b, nil
}
