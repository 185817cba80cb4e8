package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// logStats summarizes a process log: how many warnings and errors, and the most
// frequent of them.
type logStats struct {
	Lines  int        `json:"lines"`
	Warn   int        `json:"warnings"`
	Errors int        `json:"errors"`
	Top    []msgCount `json:"top,omitempty"`
}

type msgCount struct {
	Level string `json:"level"`
	Msg   string `json:"msg"`
	N     int    `json:"n"`
	Line  string `json:"example"`
}

// scanLog reads a log: zap JSON lines (hookrelay: "level", "msg", "error"),
// nats-server's "[WRN]"/"[ERR]" lines, redis-server's "# " (warning) lines.
// Messages are grouped by level, msg and error text.
func scanLog(r io.Reader) logStats {
	var st logStats
	counts := map[[2]string]*msgCount{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		st.Lines++
		level, msg := classify(line)
		switch level {
		case "warn":
			st.Warn++
		case "error":
			st.Errors++
		default:
			continue
		}
		k := [2]string{level, msg}
		if c := counts[k]; c != nil {
			c.N++
		} else {
			counts[k] = &msgCount{Level: level, Msg: msg, N: 1, Line: truncate(line, 600)}
		}
	}
	for _, c := range counts {
		st.Top = append(st.Top, *c)
	}
	slices.SortFunc(st.Top, func(a, b msgCount) int {
		return cmp.Or(cmp.Compare(b.N, a.N), cmp.Compare(a.Level, b.Level), cmp.Compare(a.Msg, b.Msg))
	})
	st.Top = st.Top[:min(len(st.Top), 8)]
	return st
}

// classify returns a line's level ("warn", "error" or "") and its message.
func classify(line string) (level, msg string) {
	if strings.HasPrefix(line, "{") {
		var m struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
			Error string `json:"error"`
		}
		if json.Unmarshal([]byte(line), &m) == nil {
			switch m.Level {
			case "warn":
				level = "warn"
			case "error", "dpanic", "panic", "fatal":
				level = "error"
			}
			msg = m.Msg
			if m.Error != "" {
				msg += ": " + truncate(m.Error, 160)
			}
			return level, msg
		}
	}
	for _, t := range []struct{ tag, level string }{{"[WRN] ", "warn"}, {"[ERR] ", "error"}, {"[FTL] ", "error"}} {
		if i := strings.Index(line, t.tag); i >= 0 {
			return t.level, truncate(line[i+len(t.tag):], 200)
		}
	}
	if i := strings.Index(line, " # "); i >= 0 && strings.Contains(line[:i], ":") { // redis
		msg := line[i+3:]
		for _, benign := range redisBanners {
			if strings.HasPrefix(msg, benign) {
				return "", ""
			}
		}
		return "warn", truncate(msg, 200)
	}
	return "", ""
}

// redisBanners are the lines redis-server logs at warning level ("#") on every start
// and stop.
var redisBanners = []string{
	"oO0OoO0OoO0Oo", "Redis version=", "Configuration loaded", "Server initialized",
	"User requested shutdown", "Redis is now ready to exit", "Saving the final RDB",
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// scanLogFile scans the log at path.
func scanLogFile(path string) (logStats, error) {
	f, err := os.Open(path)
	if err != nil {
		return logStats{}, err
	}
	defer f.Close()
	return scanLog(f), nil
}

func (c msgCount) String() string { return fmt.Sprintf("%6d × %-5s %s", c.N, c.Level, c.Msg) }
