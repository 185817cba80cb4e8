package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	sched "github.com/hookrelay/hookrelay/schedule"
)

// procSpec is one kind of hookrelay process and how many of it to run.
type procSpec struct {
	Roles []string // ingest, deliver, schedule
	Count int
}

// name is how the process kind is called in logs and reports: "all" or the roles
// joined with '+'.
func (p procSpec) name() string {
	if len(p.Roles) == 3 {
		return "all"
	}
	return strings.Join(p.Roles, "+")
}

var allRoles = []string{"ingest", "deliver", "schedule"}

// parseProcs reads --procs: "all=1" (the default: one process with every role) or
// "ingest=2,deliver=1,schedule=1"; roles may be combined with '+'
// ("ingest+deliver=2,schedule=1"). Every role must be present somewhere.
func parseProcs(s string) ([]procSpec, error) {
	var out []procSpec
	seen := map[string]bool{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		roles, count, ok := strings.Cut(part, "=")
		n := 1
		if ok {
			var err error
			if n, err = strconv.Atoi(strings.TrimSpace(count)); err != nil || n < 1 || n > 32 {
				return nil, fmt.Errorf("--procs %q: count %q: want 1..32", part, count)
			}
		}
		var spec procSpec
		for r := range strings.SplitSeq(roles, "+") {
			r = strings.TrimSpace(r)
			switch {
			case r == "all":
				spec.Roles = append(spec.Roles, allRoles...)
			case slices.Contains(allRoles, r):
				spec.Roles = append(spec.Roles, r)
			default:
				return nil, fmt.Errorf("--procs %q: unknown role %q (want all, ingest, deliver, schedule)", part, r)
			}
		}
		slices.SortFunc(spec.Roles, func(a, b string) int { return slices.Index(allRoles, a) - slices.Index(allRoles, b) })
		spec.Roles = slices.Compact(spec.Roles)
		spec.Count = n
		for _, r := range spec.Roles {
			seen[r] = true
		}
		out = append(out, spec)
	}
	for _, r := range allRoles {
		if !seen[r] {
			return nil, fmt.Errorf("--procs %q: no process has the %s role", s, r)
		}
	}
	return out, nil
}

// scaledPolicy is SPEC §7's schedule divided by scale (≥ 1), each duration rounded to
// the millisecond (at least 1ms): what hookload writes into the config, and what the
// sink measures the attempts against.
func scaledPolicy(scale float64) sched.Policy {
	div := func(d time.Duration) time.Duration {
		return max(time.Duration(float64(d)/scale).Round(time.Millisecond), time.Millisecond)
	}
	spec := sched.DefaultPolicy()
	p := sched.Policy{ThenEvery: div(spec.ThenEvery), GiveUpAfter: div(spec.GiveUpAfter)}
	for _, d := range spec.Delays {
		p.Delays = append(p.Delays, div(d))
	}
	return p
}

// scaledRetry is scaledPolicy written as the config's retry section.
func scaledRetry(scale float64) string {
	p := scaledPolicy(scale)
	var ds []string
	for _, d := range p.Delays {
		ds = append(ds, d.String())
	}
	return fmt.Sprintf("{delays: [%s], then_every: %s, give_up_after: %s}", strings.Join(ds, ", "), p.ThenEvery, p.GiveUpAfter)
}

// secrets are a run's credentials, fresh each run.
type secrets struct {
	admin, maya, paytia string
	endpoints           []string // whsec_…
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newSecrets(endpoints int) secrets {
	s := secrets{admin: randHex(16), maya: randHex(32), paytia: randHex(32)}
	for range endpoints {
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		s.endpoints = append(s.endpoints, "whsec_"+base64.StdEncoding.EncodeToString(b))
	}
	return s
}

// endpointID is the id of the i-th (0-based) merchant endpoint; the sink serves it at
// /hooks/<id>.
func endpointID(i int) string { return fmt.Sprintf("sink-%d", i+1) }

// relayConfig is the hookrelay config file: addresses come from the environment
// (HOOKRELAY_LISTEN, HOOKRELAY_ADMIN_LISTEN, NATS_URL, REDIS_URL), so every process
// reads the same file, as in production.
func relayConfig(sec secrets, sinkURL string, maxInFlight int, retryScale float64, shutdown, deliveryTimeout time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# written by hookload
listen: "${HOOKRELAY_LISTEN:-127.0.0.1:0}"
admin: {listen: "${HOOKRELAY_ADMIN_LISTEN}", token: %q}
nats: {url: "${NATS_URL}", replicas: 1}
redis: {url: "${REDIS_URL}"}
log: {format: json, level: info}
shutdown_timeout: %s
sources:
  - {id: %s, provider: paymaya, merchant: loadco, token: %q}
  - {id: %s, provider: paytia, merchant: loadco, token: %q}
endpoints:
`, sec.admin, shutdown, mayaSource, sec.maya, paytiaSource, sec.paytia)
	for i, s := range sec.endpoints {
		fmt.Fprintf(&b, "  - {id: %s, merchant: loadco, url: %q, types: [], secret: %q, max_in_flight: %d}\n",
			endpointID(i), sinkURL+"/hooks/"+endpointID(i), s, maxInFlight)
	}
	fmt.Fprintf(&b, "retry: %s\n", scaledRetry(retryScale))
	fmt.Fprintf(&b, "delivery: {timeout: %s, allow_cidrs: [\"127.0.0.0/8\"]}\n", deliveryTimeout)
	return b.String()
}

// natsConfig is nats-server's config file: ports and JetStream come from flags.
const natsConfig = `# written by hookload; the port, address and JetStream store come from flags
# hookrelay needs max_payload of 2MB or more (README "Configuration").
max_payload: 2MB
`

// writeFile writes s to path, readable by the owner only (it holds tokens).
func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }
