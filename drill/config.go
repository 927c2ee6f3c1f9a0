package drill

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

//go:embed drill.yaml
var defaultYAML []byte

// Config describes a rehearsal: the deployment it builds and how players
// behave. Every field has a default (drill.yaml, embedded).
type Config struct {
	Zone             string        `yaml:"zone"`
	Regions          []RegionSpec  `yaml:"regions"`
	Players          int           `yaml:"players"`
	BetInterval      time.Duration `yaml:"bet_interval"`
	BalanceShare     float64       `yaml:"balance_share"`
	RetryDeadline    time.Duration `yaml:"retry_deadline"`
	Warmup           time.Duration `yaml:"warmup"`
	Observe          time.Duration `yaml:"observe"`
	DNSTTL           time.Duration `yaml:"dns_ttl"`
	Replication      string        `yaml:"replication"`
	ReplicationLag   time.Duration `yaml:"replication_lag"`
	Promotion        string        `yaml:"promotion"`
	AutoPromoteAfter time.Duration `yaml:"auto_promote_after"`
	Viewers          int           `yaml:"viewers"`
	Witness          bool          `yaml:"witness"`
	Lease            time.Duration `yaml:"lease"`
	OperatorReaction time.Duration `yaml:"operator_reaction"`
	Targets          Targets       `yaml:"targets"`
}

// RegionSpec is one region: its name (also the name of the ledger domain
// homed there) and how many edge nodes it runs.
type RegionSpec struct {
	Name  string `yaml:"name"`
	Edges int    `yaml:"edges"`
}

// Targets are the numbers a drill must meet; missing one fails it.
type Targets struct {
	RTOAuto     time.Duration `yaml:"rto_auto"`
	RTOFourEyes time.Duration `yaml:"rto_four_eyes"`
	DNSMove     time.Duration `yaml:"dns_move"`
}

// Promotion modes.
const (
	PromoteAuto     = "auto"
	PromoteFourEyes = "four-eyes"
)

// DefaultConfig is the embedded drill.yaml.
func DefaultConfig() *Config {
	c, err := decode("drill.yaml (embedded)", defaultYAML, nil)
	if err != nil {
		panic("drill: embedded drill.yaml: " + err.Error())
	}
	return c
}

// LoadConfig reads file over the embedded defaults: a field the file does
// not set keeps its default. Errors name the file, the line and the field.
func LoadConfig(file string) (*Config, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return ParseConfig(file, b)
}

// ParseConfig is LoadConfig of b, read from file.
func ParseConfig(file string, b []byte) (*Config, error) {
	return decode(file, b, DefaultConfig())
}

func decode(file string, b []byte, base *Config) (*Config, error) {
	c := base
	if c == nil {
		c = &Config{}
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	// An empty file (io.EOF) keeps every default.
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			var lines []string
			for _, e := range te.Errors {
				// "line 3: field foo not found in type drill.Config"
				lines = append(lines, file+":"+strings.TrimPrefix(e, "line "))
			}
			return nil, errors.New(strings.Join(lines, "\n"))
		}
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var root yaml.Node
	_ = yaml.Unmarshal(b, &root) // it decoded above
	if errs := c.check(); len(errs) > 0 {
		// In the order of the file.
		at := make([]int, len(errs))
		for i, e := range errs {
			at[i] = lineOf(&root, e.field)
		}
		order := make([]int, len(errs))
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(a, b int) bool { return at[order[a]] < at[order[b]] })
		lines := make([]string, 0, len(errs))
		for _, i := range order {
			loc := file
			if at[i] > 0 {
				loc = fmt.Sprintf("%s:%d", file, at[i])
			}
			lines = append(lines, loc+": "+errs[i].field+": "+errs[i].msg)
		}
		return nil, errors.New(strings.Join(lines, "\n"))
	}
	return c, nil
}

// lineOf finds the line of field ("regions[1].name") in a YAML document;
// 0 when the document does not set it (the value is a default), in which
// case the nearest enclosing field that is set gives the line.
func lineOf(doc *yaml.Node, field string) int {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, part := range strings.Split(field, ".") {
		name, idx := part, -1
		if i := strings.IndexByte(part, '['); i > 0 && strings.HasSuffix(part, "]") {
			name = part[:i]
			fmt.Sscanf(part[i+1:len(part)-1], "%d", &idx)
		}
		if n == nil || n.Kind != yaml.MappingNode {
			return line
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == name {
				line, next = n.Content[i].Line, n.Content[i+1]
			}
		}
		if next == nil {
			return line
		}
		n = next
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return line
			}
			n = n.Content[idx]
			line = n.Line
		}
	}
	return line
}

type fieldError struct{ field, msg string }

// Validate reports every problem at once, each naming its field.
func (c *Config) Validate() error {
	errs := c.check()
	if len(errs) == 0 {
		return nil
	}
	lines := make([]string, len(errs))
	for i, e := range errs {
		lines[i] = e.field + ": " + e.msg
	}
	return errors.New(strings.Join(lines, "\n"))
}

func (c *Config) check() []fieldError {
	var errs []fieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, fieldError{field, fmt.Sprintf(format, args...)})
	}
	if c.Zone == "" || strings.ContainsAny(c.Zone, " /:") {
		bad("zone", "%q is not a DNS name", c.Zone)
	}
	if len(c.Regions) != 2 {
		bad("regions", "a drill has exactly two regions (each domain's replica lives in the other), got %d", len(c.Regions))
	}
	seen := map[string]bool{}
	for i, r := range c.Regions {
		if r.Name == "" || strings.ContainsAny(r.Name, " ./:") || len(r.Name) > 8 {
			bad(fmt.Sprintf("regions[%d].name", i), "%q: want a short name (1–8 letters, digits or -)", r.Name)
		}
		if seen[r.Name] {
			bad(fmt.Sprintf("regions[%d].name", i), "%q is defined twice", r.Name)
		}
		seen[r.Name] = true
		if r.Edges < 1 || r.Edges > 8 {
			bad(fmt.Sprintf("regions[%d].edges", i), "%d: want 1 to 8", r.Edges)
		}
	}
	if c.Players < 2 || c.Players > 5000 {
		bad("players", "%d: want 2 to 5000", c.Players)
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"bet_interval", c.BetInterval}, {"retry_deadline", c.RetryDeadline}, {"warmup", c.Warmup},
		{"observe", c.Observe}, {"dns_ttl", c.DNSTTL}} {
		if d.v <= 0 {
			bad(d.field, "%v: must be positive", d.v)
		}
	}
	if c.DNSTTL%time.Second != 0 {
		bad("dns_ttl", "%v: DNS TTLs are whole seconds", c.DNSTTL)
	}
	if c.Viewers < 0 || c.Viewers > 100 {
		bad("viewers", "%d: want 0 to 100", c.Viewers)
	}
	if c.BalanceShare < 0 || c.BalanceShare > 1 {
		bad("balance_share", "%v: want 0 to 1", c.BalanceShare)
	}
	switch c.Replication {
	case "sync", "async":
	default:
		bad("replication", "%q: want sync or async", c.Replication)
	}
	if c.Witness && (c.Lease < time.Second || c.Lease > time.Minute) {
		bad("lease", "%v: want 1s to 1m (renewed every 250ms)", c.Lease)
	}
	if c.ReplicationLag < 0 {
		bad("replication_lag", "%v: must not be negative", c.ReplicationLag)
	}
	switch c.Promotion {
	case PromoteAuto:
		if c.AutoPromoteAfter <= 0 {
			bad("auto_promote_after", "%v: automatic promotion needs a positive delay", c.AutoPromoteAfter)
		}
	case PromoteFourEyes:
		if c.OperatorReaction < 0 {
			bad("operator_reaction", "%v: must not be negative", c.OperatorReaction)
		}
	default:
		bad("promotion", "%q: want %s or %s", c.Promotion, PromoteAuto, PromoteFourEyes)
	}
	return errs
}

// Domains are the ledger domains, one per region, homed there.
func (c *Config) Domains() []string {
	out := make([]string, len(c.Regions))
	for i, r := range c.Regions {
		out[i] = r.Name
	}
	return out
}
