package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// clkTck is USER_HZ, the unit of utime and stime in /proc/<pid>/stat: 100 on every
// Linux architecture Go supports.
const clkTck = 100

// usage is one reading of a process's CPU and memory.
type usage struct {
	At     time.Duration `json:"t"`      // since the run's epoch
	CPU    float64       `json:"cpu_s"`  // user + system seconds so far
	RSSKB  int64         `json:"rss_kb"` // VmRSS
	PeakKB int64         `json:"hwm_kB"` // VmHWM: the peak RSS so far
}

// parseStat reads utime + stime (in ticks) from /proc/<pid>/stat. The command name,
// field 2, is in parentheses and may hold spaces or parentheses, so fields are counted
// after the last ')'.
func parseStat(b []byte) (ticks int64, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat: no ')'")
	}
	f := bytes.Fields(b[i+1:])
	// After ')': state is field 3, so utime (14) and stime (15) are f[11] and f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("stat: %d fields after the name", len(f))
	}
	u, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	s, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("stat: bad utime/stime %q %q", f[11], f[12])
	}
	return u + s, nil
}

// parseStatus reads VmRSS and VmHWM (kB) from /proc/<pid>/status.
func parseStatus(b []byte) (rssKB, hwmKB int64) {
	for line := range bytes.Lines(b) {
		var dst *int64
		switch {
		case bytes.HasPrefix(line, []byte("VmRSS:")):
			dst = &rssKB
		case bytes.HasPrefix(line, []byte("VmHWM:")):
			dst = &hwmKB
		default:
			continue
		}
		f := bytes.Fields(line)
		if len(f) >= 2 {
			*dst, _ = strconv.ParseInt(string(f[1]), 10, 64)
		}
	}
	return rssKB, hwmKB
}

// readUsage reads pid's usage now ("self" for this process).
func readUsage(pid string, at time.Duration) (usage, error) {
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return usage{}, err
	}
	ticks, err := parseStat(stat)
	if err != nil {
		return usage{}, err
	}
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return usage{}, err
	}
	rss, hwm := parseStatus(status)
	return usage{At: at, CPU: float64(ticks) / clkTck, RSSKB: rss, PeakKB: hwm}, nil
}

// sampler reads the usage of every watched process once a second.
type sampler struct {
	epoch time.Time
	mu    sync.Mutex
	pids  map[string]string // name → pid
	// series holds every reading per name.
	series map[string][]usage
}

func newSampler(epoch time.Time) *sampler {
	return &sampler{epoch: epoch, pids: map[string]string{}, series: map[string][]usage{}}
}

// watch adds a process (pid "self" for hookload).
func (s *sampler) watch(name, pid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pids[name] = pid
}

// unwatch stops reading a process (it is about to exit).
func (s *sampler) unwatch(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pids, name)
}

// sample reads every watched process now and returns the readings.
func (s *sampler) sample() map[string]usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := time.Since(s.epoch)
	out := make(map[string]usage, len(s.pids))
	for name, pid := range s.pids {
		u, err := readUsage(pid, at)
		if err != nil {
			continue // exited between the check and the read
		}
		s.series[name] = append(s.series[name], u)
		out[name] = u
	}
	return out
}

// run samples every interval until stop is closed.
func (s *sampler) run(interval time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			s.sample()
		}
	}
}

// peak is the highest VmHWM read for name.
func (s *sampler) peak(name string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var p int64
	for _, u := range s.series[name] {
		p = max(p, u.PeakKB, u.RSSKB)
	}
	return p
}

// cpuTimes is the machine's CPU time from the "cpu" line of /proc/stat, in ticks.
type cpuTimes struct {
	busy, idle, steal, softirq int64
}

// parseCPUTimes reads the first line of /proc/stat: user nice system idle iowait irq
// softirq steal …; idle counts idle and iowait, busy the rest but steal (time the
// hypervisor gave to someone else).
func parseCPUTimes(b []byte) (cpuTimes, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 9 || string(f[0]) != "cpu" {
		return cpuTimes{}, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var v [8]int64
	for i := range v {
		n, err := strconv.ParseInt(string(f[i+1]), 10, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("/proc/stat: %q", line)
		}
		v[i] = n
	}
	return cpuTimes{
		busy:    v[0] + v[1] + v[2] + v[5] + v[6],
		idle:    v[3] + v[4],
		softirq: v[6],
		steal:   v[7],
	}, nil
}

func readCPUTimes() (cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	return parseCPUTimes(b)
}
