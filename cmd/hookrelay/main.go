// Command hookrelay receives payment provider webhooks, keeps them on NATS JetStream
// and delivers them, signed, to the merchants that subscribed. See README.md.
//
//	hookrelay serve [--config FILE] [--listen ADDR] [--nats-url URL] [--redis-url URL]
//	hookrelay endpoints list|show|create|enable|disable|delete|rotate-secret …
//	hookrelay dlq list|show|replay …
//	hookrelay events find|show …
//	hookrelay deliveries show EVENT_ID
//	hookrelay rejected list|show|reprocess …
//	hookrelay redrive --since T [--endpoint ID] [--yes]
//
// All but serve are the on-call commands: they call the admin API at --admin-url
// (env HOOKRELAY_ADMIN_URL) with the token in HOOKRELAY_ADMIN_TOKEN.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/hookrelay/hookrelay/deliver"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	deliver.Version = version
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "hookrelay:", err)
		}
		os.Exit(exitCode(err))
	}
}

// usageError marks a mistake in the command line (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func exitCode(err error) int {
	var ue usageError
	if errors.As(err, &ue) || errors.Is(err, flag.ErrHelp) {
		return 2
	}
	return 1
}

const usage = `usage: hookrelay <command> [flags]

commands:
  serve       run the receivers (everything embedded with no configuration)
  config      validate or print (secrets masked) the configuration serve would use
  probe       GET a URL, exit 0 on 200 (container health checks: probe http://127.0.0.1:8081/readyz)
  endpoints   list, show, create, enable, disable, delete merchant endpoints, rotate their secrets
  dlq         list, show and replay dead letters
  events      find stored events (by the merchant's reference), show one with its deliveries
  deliveries  show an event's delivery to each endpoint, attempt by attempt
  rejected    list, show and reprocess provider requests the parser refused
  redrive     schedule again the deliveries Redis forgot, from a time
  version     print the version

All but serve call the admin API at --admin-url (env HOOKRELAY_ADMIN_URL, default
http://127.0.0.1:8081) with the token in the environment variable HOOKRELAY_ADMIN_TOKEN.

run 'hookrelay serve -h' for serve's flags, 'hookrelay <command> help' (e.g. 'hookrelay
dlq help') for a command's actions, and e.g. 'hookrelay dlq list -h' for an action's flags.`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return usageError{"no command given"}
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "config":
		return runConfig(ctx, args[1:], stdout, stderr)
	case "probe":
		return runProbe(ctx, args[1:], stdout, stderr)
	case "endpoints":
		return runEndpoints(ctx, args[1:], stdout, stderr)
	case "dlq":
		return runDLQ(ctx, args[1:], stdout, stderr)
	case "events":
		return runEvents(ctx, args[1:], stdout, stderr)
	case "deliveries":
		return runDeliveries(ctx, args[1:], stdout, stderr)
	case "rejected":
		return runRejected(ctx, args[1:], stdout, stderr)
	case "redrive":
		return runRedrive(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "hookrelay", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		fmt.Fprintln(stderr, usage)
		return usageError{fmt.Sprintf("unknown command %q", args[0])}
	}
}
