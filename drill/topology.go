package drill

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Topology places the regions on this machine: each in its own network
// namespace joined to a "WAN" bridge in the root namespace (where the
// players and the drill's monitor run), or, with Loopback, all on 127.x
// addresses of the host's loopback interface.
type Topology struct {
	Loopback bool
	regions  []string
	// net is the second octet of every address (10.net.r.h or
	// 127.net.r.h), derived from the process id so two drills on one
	// machine do not collide.
	net    int
	tag    string
	bridge string
	ns     map[string]string // region → namespace
	veth   map[string]string // region → host side of its veth pair
	setUp  []func() error    // undo steps, run in reverse
}

// Host octets of each kind of process inside a region.
const (
	hostEdge   = 11 // + edge index
	hostLedger = 31 // + domain index
	hostDNS    = 53
	hostRedis  = 63
)

// Ports every process listens on, at its own address.
const (
	portEdge   = 8443
	portAdmin  = 9090
	portLedger = 7000
	portDNS    = 5353
	portRedis  = 6379
	// portWitness is the witness Redis's, on the WAN side.
	portWitness = 6390
)

// RegionWAN names the WAN side of the topology (the root namespace) where
// the players, the drill's monitor and the witness run.
const RegionWAN = "wan"

// NewTopology prepares addresses for regions; Setup creates namespaces.
func NewTopology(regions []string, loopback bool) *Topology {
	pid := os.Getpid()
	t := &Topology{Loopback: loopback, regions: regions, net: 100 + pid%100, tag: fmt.Sprintf("%d", pid%100000),
		ns: map[string]string{}, veth: map[string]string{}}
	t.bridge = "hdb" + t.tag
	for i, r := range regions {
		t.ns[r] = fmt.Sprintf("hedge-drill-%s-%s", t.tag, r)
		t.veth[r] = fmt.Sprintf("hdv%s%d", t.tag, i)
	}
	return t
}

// IP is the address of host h in region r (0-based).
func (t *Topology) IP(r, h int) string {
	if t.Loopback {
		return fmt.Sprintf("127.%d.%d.%d", t.net, r+1, h)
	}
	return fmt.Sprintf("10.%d.%d.%d", t.net, r+1, h)
}

// WANIP is the drill's own address on the WAN side: the bridge's in the
// root namespace (127.net.0.1 with loopback).
func (t *Topology) WANIP() string {
	if t.Loopback {
		return fmt.Sprintf("127.%d.0.1", t.net)
	}
	return fmt.Sprintf("10.%d.0.1", t.net)
}

// CheckNamespaces says exactly what is missing for namespaces, or nil.
func CheckNamespaces() error {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (network namespaces and veth pairs need CAP_NET_ADMIN; running as uid "+fmt.Sprint(os.Geteuid())+")")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		missing = append(missing, "the ip command (Debian package iproute2)")
	}
	if len(missing) > 0 {
		return errors.New("network namespaces unavailable: missing " + strings.Join(missing, " and ") + "; run with --loopback to use 127.x addresses instead")
	}
	probe := fmt.Sprintf("hedge-drill-probe-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		return fmt.Errorf("network namespaces unavailable: ip netns add: %v: %s; run with --loopback to use 127.x addresses instead", err, strings.TrimSpace(string(out)))
	}
	exec.Command("ip", "netns", "del", probe).Run()
	return nil
}

func ipCmd(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Setup creates the bridge, one namespace per region and its veth pair,
// and gives each region's interface every address its processes use.
// On error what was made is removed again.
func (t *Topology) Setup(hosts map[string][]string) error {
	if t.Loopback {
		return nil
	}
	step := func(undo func() error, args ...string) error {
		if err := ipCmd(args...); err != nil {
			return err
		}
		if undo != nil {
			t.setUp = append(t.setUp, undo)
		}
		return nil
	}
	err := func() error {
		if err := step(func() error { return ipCmd("link", "del", t.bridge) }, "link", "add", t.bridge, "type", "bridge"); err != nil {
			return err
		}
		if err := step(nil, "addr", "add", fmt.Sprintf("10.%d.0.1/16", t.net), "dev", t.bridge); err != nil {
			return err
		}
		if err := step(nil, "link", "set", t.bridge, "up"); err != nil {
			return err
		}
		for _, r := range t.regions {
			ns, veth, peer := t.ns[r], t.veth[r], t.veth[r]+"p"
			if err := step(func() error { return ipCmd("netns", "del", ns) }, "netns", "add", ns); err != nil {
				return err
			}
			if err := step(nil, "-n", ns, "link", "set", "lo", "up"); err != nil {
				return err
			}
			if err := step(func() error { return ipCmd("link", "del", veth) }, "link", "add", veth, "type", "veth", "peer", "name", peer); err != nil {
				return err
			}
			if err := step(nil, "link", "set", peer, "netns", ns); err != nil {
				return err
			}
			if err := step(nil, "link", "set", veth, "master", t.bridge); err != nil {
				return err
			}
			if err := step(nil, "link", "set", veth, "up"); err != nil {
				return err
			}
			for _, ip := range hosts[r] {
				if err := step(nil, "-n", ns, "addr", "add", ip+"/16", "dev", peer); err != nil {
					return err
				}
			}
			if err := step(nil, "-n", ns, "link", "set", peer, "up"); err != nil {
				return err
			}
		}
		return nil
	}()
	if err != nil {
		t.Teardown()
	}
	return err
}

// Teardown removes the namespaces and links Setup made. Safe to call twice.
func (t *Topology) Teardown() error {
	var errs []error
	for i := len(t.setUp) - 1; i >= 0; i-- {
		if err := t.setUp[i](); err != nil {
			errs = append(errs, err)
		}
	}
	t.setUp = nil
	return errors.Join(errs...)
}

// Command runs name with args inside region r's namespace.
func (t *Topology) Command(region, name string, args ...string) *exec.Cmd {
	if t.Loopback || region == "" {
		return exec.Command(name, args...)
	}
	return exec.Command("ip", append([]string{"netns", "exec", t.ns[region], name}, args...)...)
}

// Cut takes region r off the WAN (its link to the bridge goes down);
// Heal brings it back. Loopback has no links to cut.
func (t *Topology) Cut(region string) error {
	if t.Loopback {
		return errors.New("a partition needs network namespaces (on --loopback every process shares one interface)")
	}
	return ipCmd("link", "set", t.veth[region], "down")
}

// Heal undoes Cut.
func (t *Topology) Heal(region string) error {
	if t.Loopback {
		return nil
	}
	return ipCmd("link", "set", t.veth[region], "up")
}
