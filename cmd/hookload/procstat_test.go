package main

import (
	"strings"
	"testing"
)

func TestParseStat(t *testing.T) {
	// The name may hold spaces and parentheses.
	line := "4242 (hook relay) (x)) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 37 0 0 20 0 9 0 100 1000000 2000 18446744073709551615\n"
	ticks, err := parseStat([]byte(line))
	if err != nil || ticks != 187 {
		t.Errorf("parseStat = %d, %v; want 187", ticks, err)
	}
	if _, err := parseStat([]byte("4242 (x) S 1 2")); err == nil {
		t.Error("short stat accepted")
	}
}

func TestParseStatus(t *testing.T) {
	status := "Name:\thookrelay\nVmPeak:\t 1000 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\nThreads:\t9\n"
	rss, hwm := parseStatus([]byte(status))
	if rss != 40960 || hwm != 51200 {
		t.Errorf("parseStatus = %d, %d", rss, hwm)
	}
}

// TestReadUsageSelf reads this process's own /proc entries (Linux only).
func TestReadUsageSelf(t *testing.T) {
	u, err := readUsage("self", 0)
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	if u.RSSKB <= 0 || u.PeakKB < u.RSSKB || u.CPU < 0 {
		t.Errorf("usage %+v", u)
	}
}

func TestScanLog(t *testing.T) {
	log := strings.Join([]string{
		`{"level":"info","ts":1,"msg":"serving"}`,
		`{"level":"warn","ts":2,"msg":"nats disconnected","error":"EOF"}`,
		`{"level":"warn","ts":3,"msg":"nats disconnected","error":"EOF"}`,
		`{"level":"error","ts":4,"msg":"fan-out stopped","error":"boom"}`,
		`[123] 2026/11/21 10:00:00.000000 [WRN] Slow consumer`,
		`[123] 2026/11/21 10:00:00.000000 [INF] Server is ready`,
		`123:M 21 Nov 2026 10:00:00.000 # Redis version=7.0.15, bits=64`,
		`123:M 21 Nov 2026 10:00:00.000 # WARNING Memory overcommit must be enabled!`,
		`123:M 21 Nov 2026 10:00:00.000 * Ready to accept connections`,
	}, "\n")
	st := scanLog(strings.NewReader(log))
	if st.Lines != 9 || st.Warn != 4 || st.Errors != 1 {
		t.Errorf("scanLog = %+v", st)
	}
	if len(st.Top) == 0 || st.Top[0].Msg != "nats disconnected: EOF" || st.Top[0].N != 2 {
		t.Errorf("top = %+v", st.Top)
	}
}

func TestParseCPUTimes(t *testing.T) {
	c, err := parseCPUTimes([]byte("cpu  100 5 40 800 10 2 8 3 0 0\ncpu0 50 0 20 400 5 1 4 1 0 0\n"))
	if err != nil || c != (cpuTimes{busy: 155, idle: 810, steal: 3, softirq: 8}) {
		t.Errorf("parseCPUTimes = %+v, %v", c, err)
	}
	if _, err := parseCPUTimes([]byte("intr 1 2 3")); err == nil {
		t.Error("no cpu line accepted")
	}
}
