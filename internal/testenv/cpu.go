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
// httptest sink) and, on a real Redis, by the Redis server. On a machine whose cores
// are all busy, these say where a benchmark's throughput goes, which deliveries/s
// alone cannot.
type CPUMeter struct {
	redis          *Redis
	proc, redisCPU time.Duration
	redisOK        bool
}

// StartCPU starts measuring; r may be nil (no Redis figure), and miniredis runs in
// this process, so it has no figure of its own either.
func StartCPU(tb testing.TB, r *Redis) *CPUMeter {
	tb.Helper()
	m := &CPUMeter{redis: r, proc: processCPU()}
	if r != nil && r.Mini == nil {
		m.redisCPU, m.redisOK = redisCPU(r)
	}
	return m
}

// Report adds the CPU per op to b's results: "cpu-us/op" for this process and, on a
// real Redis, "redis-cpu-us/op"; ops is how many ops the measured span did. A
// platform without getrusage reports no process figure.
func (m *CPUMeter) Report(b *testing.B, ops int, unit string) {
	b.Helper()
	if ops <= 0 {
		return
	}
	if now := processCPU(); now > 0 {
		b.ReportMetric(float64(now-m.proc)/float64(time.Microsecond)/float64(ops), "cpu-us/"+unit)
	}
	if m.redisOK {
		if now, ok := redisCPU(m.redis); ok {
			b.ReportMetric(float64(now-m.redisCPU)/float64(time.Microsecond)/float64(ops), "redis-cpu-us/"+unit)
		}
	}
}

// redisCPU is the server's used_cpu_user + used_cpu_sys from INFO cpu.
func redisCPU(r *Redis) (time.Duration, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := r.Client.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, false
	}
	var total float64
	found := 0
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok || (k != "used_cpu_user" && k != "used_cpu_sys") {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, false
		}
		total += f
		found++
	}
	return time.Duration(total * float64(time.Second)), found == 2
}
