package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestClientTLS(t *testing.T) {
	dir := t.TempDir()
	pem := filepath.Join(dir, "x.pem")
	os.WriteFile(pem, []byte("x"), 0o600)
	src := `admin: {allow_loopback: true}
ledger:
  writer_tls: {ca_file: "` + filepath.Join(dir, "missing.pem") + `", cert_file: "` + pem + `"}
regions:
  - name: sea
    nodes: [{name: sea-1, listeners: [{address: "127.0.0.1:8443", tls: {mode: "off"}}]}]
    pools:
      - name: rails
        members: [{url: "https://127.0.0.1:7100"}]
        tls: {ca_file: "` + pem + `", cert_file: "` + pem + `", key_file: "` + pem + `", server_name: "bad name"}
`
	_, err := Parse("t.yaml", []byte(src))
	for _, w := range []string{
		"t.yaml:3: ledger.writer_tls.ca_file: cannot read " + filepath.Join(dir, "missing.pem"),
		"t.yaml:3: ledger.writer_tls: give both cert_file and key_file",
		`t.yaml:10: regions[0].pools[0].tls.server_name: "bad name" is not a host name`,
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("want an error containing\n  %s\ngot:\n  %v", w, err)
		}
	}
}
