// Command hookload is hookrelay's end-to-end load harness. It runs the system the way
// it is deployed, as separate processes over loopback, and measures it:
//
//   - a real nats-server with JetStream (from PATH, /usr/sbin, or built from the
//     module's nats-server dependency; --nats-server) with max_payload 2MB, and a real
//     redis-server with AOF (appendfsync everysec), on ports of their own (never the
//     machine's 4222 and 6379), their data in the run dir;
//   - hookrelay serve, built from ./cmd/hookrelay: one process with every role, or
//     several by role (--procs ingest=2,deliver=1,schedule=1), all reading one config
//     file that hookload writes (two sources, --endpoints endpoints pointing at the
//     sink, loopback allowed by delivery.allow_cidrs, SPEC §7's retry delays divided
//     by --retry-scale), each logging JSON to its own file;
//   - a merchant sink inside hookload that verifies every Standard Webhooks
//     signature, records each webhook-id (the event id) and its arrival, counts
//     repeats, and answers 200 (500 to a --sink-fail share of first attempts);
//   - an open-loop generator: request i is due at start + i/rate whatever earlier
//     ones are doing; a pacer queues each due request for its ingest process's own
//     pool of workers (one per allowed connection, --conns per ingest process,
//     keep-alive), and latency counts from the scheduled start (or from when the
//     request was queued, if the pacer queued it a little early), so a stall anywhere
//     shows up in the figures instead of lowering the rate (no coordinated omission),
//     and a slow process holds up only its own requests. It posts a mix of PayMaya
//     JSON and Paytia form callbacks made from parse/testdata, with unique payment ids
//     and references so that every request is a distinct event, round robin over the
//     ingest processes. The 200 answer names the event id; the sink sees it as
//     webhook-id, which gives the end-to-end latency.
//
// It checks that one PayMaya and one Paytia callback per ingest process get through
// before the load, then runs the load, waits until every event answered 2xx has
// reached every endpoint (or --drain-timeout; a Ctrl-C or a process exiting on its
// own ends the wait at once, and what is still to come is reported as undelivered,
// not lost), stops hookrelay with SIGTERM (then Redis with SIGTERM, nats-server with
// SIGINT: before 2.10 it exits 1 on SIGTERM) and checks that each exits 0, and prints
// the report: ingest rate and latency, end-to-end latency, delivered, missing (lost),
// 2xx answers that named no new event (unchecked), duplicates, each process's CPU and
// peak RSS (from /proc, every second, and its rusage), what hookrelay measured itself
// (/metrics), the warnings in the logs, and how busy the machine was with other work.
//
// Usage (from the repository root):
//
//	go run ./cmd/hookload hold --rate 5000 --duration 30s
//	go run ./cmd/hookload saturate    # 500/s, +500/s every 10s, until it gives out
//	go run ./cmd/hookload hold --rate 2000 --duration 1m --procs ingest=2,deliver=1,schedule=1
//	go run ./cmd/hookload hold --rate 1000 --duration 20s --sink-fail 0.05 --endpoints 2 --json
//	scripts/hookload.sh              # the standard runs, reports kept together
//
// hold keeps one rate for --duration. saturate climbs a staircase (--start, +--step
// every --step-duration, up to --max-rate) and stops at the first step whose ingest
// p99 (requests still unanswered counting as slowest) exceeds --p99-limit, that has
// any error, or whose 2xx answers per second fall below --min-achieved of the
// target; it reports the highest rate that passed.
//
// Everything stays in the run dir (--dir, default a new temporary directory): the
// config, the data of NATS and Redis, one log per process and its final /metrics
// (logs/), hookload.log, report.txt, report.json, timeline.csv (per second: sent,
// answered, ingest p99, delivered) and usage.csv (CPU and RSS per process, per
// second). The exit status is 0 when nothing was lost, every 2xx answer named a new
// event (one that can be checked for loss) and every process exited 0, even if the
// system could not keep up (the report says so), 1 otherwise, 2 on a usage mistake.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

func main() {
	// The generator allocates little that lives: trade memory (plenty) for GC CPU
	// (scarce: it is shared with the system under test).
	debug.SetGCPercent(400)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "hookload:", err)
		}
		if errors.Is(err, flag.ErrHelp) || errors.As(err, new(usageError)) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

const usageText = `usage: hookload <mode> [flags]

modes:
  hold       one arrival rate for a duration (--rate 5000 --duration 30s)
  saturate   step the rate up until ingest p99, errors or the achieved rate give out
  faults     hold a rate while hookrelay's processes, nats-server and redis-server
             are SIGKILLed and restarted in turn and the sink fails, hangs and
             answers 410/429/500; then account for every event answered 2xx

run 'hookload <mode> -h' for the flags.`

// usageError is a mistake on the command line (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usageText)
		return usageError{"no mode given"}
	}
	mode := args[0]
	switch mode {
	case "hold", "saturate", "faults":
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usageText)
		return nil
	default:
		fmt.Fprintln(stderr, usageText)
		return usageError{fmt.Sprintf("unknown mode %q", mode)}
	}
	o, err := parseFlags(mode, args[1:], stderr)
	if err != nil {
		return err
	}
	return runSession(ctx, o, stdout, stderr)
}
