package testenv

import (
	"bufio"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
)

// CPUMeter measures the CPU time spent between its start and Report: by this process
// (the code under test and whatever the test runs in it: an in-process nats-server, an
// httptest sink) and, on a real Redis, by the Redis server, with the number of
// commands Redis ran (a script's own calls included), which unlike CPU time does not
// depend on how busy the machine is. On a machine whose cores are all busy, these say
// where a benchmark's throughput goes, which deliveries/s alone cannot.
type CPUMeter struct {
	redis          *Redis
	proc, redisCPU time.Duration
	redisCmds      float64
	redisOK        bool
}

// StartCPU starts measuring; r may be nil (no Redis figure), and miniredis runs in
// this process, so it has no figure of its own either.
func StartCPU(tb testing.TB, r *Redis) *CPUMeter {
	tb.Helper()
	m := &CPUMeter{redis: r, proc: processCPU()}
	if r != nil && r.Mini == nil {
		m.redisCPU, m.redisCmds, m.redisOK = redisCPU(r)
	}
	return m
}

// Report adds the CPU per op to b's results: "cpu-us/<unit>" for this process and, on
// a real Redis, "redis-cpu-us/<unit>" and "redis-cmds/<unit>"; ops is how many ops the
// measured span did. A platform without getrusage reports no process figure.
func (m *CPUMeter) Report(b *testing.B, ops int, unit string) {
	b.Helper()
	if ops <= 0 {
		return
	}
	if now := processCPU(); now > 0 {
		b.ReportMetric(float64(now-m.proc)/float64(time.Microsecond)/float64(ops), "cpu-us/"+unit)
	}
	if m.redisOK {
		if now, cmds, ok := redisCPU(m.redis); ok {
			b.ReportMetric(float64(now-m.redisCPU)/float64(time.Microsecond)/float64(ops), "redis-cpu-us/"+unit)
			b.ReportMetric((cmds-m.redisCmds)/float64(ops), "redis-cmds/"+unit)
		}
	}
}

// redisCPU is the server's used_cpu_user + used_cpu_sys (INFO cpu) and its
// total_commands_processed (INFO stats).
func redisCPU(r *Redis) (cpu time.Duration, cmds float64, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var info string
	for _, section := range []string{"cpu", "stats"} { // one INFO each: Redis 6 takes one section
		s, err := r.Client.Info(ctx, section).Result()
		if err != nil {
			return 0, 0, false
		}
		info += s
	}
	var secs float64
	found := 0
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok || (k != "used_cpu_user" && k != "used_cpu_sys" && k != "total_commands_processed") {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, 0, false
		}
		if k == "total_commands_processed" {
			cmds = f
		} else {
			secs += f
		}
		found++
	}
	return time.Duration(secs * float64(time.Second)), cmds, found == 3
}
