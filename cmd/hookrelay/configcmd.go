package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"

	"go.yaml.in/yaml/v3"

	"github.com/hookrelay/hookrelay/configs"
)

const configUsage = `usage: hookrelay config validate|print [--config FILE]

  validate  read the config as serve would (file, then environment, then defaults) and
            report every problem, naming the key; exit 1 when there is one
  print     print the effective config as YAML, secrets masked

With no --config, the built-in demo config (configs/dev.yaml) is read.`

// runConfig serves "hookrelay config validate|print".
func runConfig(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stdout, configUsage)
		if len(args) == 0 {
			return usageError{"config: no action given (validate or print)"}
		}
		return nil
	}
	action := args[0]
	if action != "validate" && action != "print" {
		fmt.Fprintln(stderr, configUsage)
		return usageError{fmt.Sprintf("config: unknown action %q (validate or print)", action)}
	}
	fs := flag.NewFlagSet("config "+action, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file (default: the built-in configs/dev.yaml)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("config %s: unexpected argument %q", action, fs.Arg(0))}
	}
	cfg, err := loadConfig(*path, configs.Dev, os.Getenv)
	if err == nil {
		err = cfg.Validate()
	}
	name := *path
	if name == "" {
		name = "the built-in demo config"
	}
	if err != nil {
		return fmt.Errorf("%s is invalid:\n%w", name, err)
	}
	if action == "validate" {
		fmt.Fprintf(stdout, "%s is valid: %d sources, %d endpoints\n", name, len(cfg.Sources), len(cfg.Endpoints))
		return nil
	}
	b, err := yaml.Marshal(cfg.masked())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "# %s, after the environment; secrets masked; 0 / \"\" / null take the defaults\n", name)
	_, err = stdout.Write(b)
	return err
}

// masked is a copy of c with every credential replaced: tokens, endpoint secrets,
// extra header values (often credentials) and passwords in URLs.
func (c *Config) masked() *Config {
	m := *c
	const hidden = "***"
	if m.Admin.Token != "" {
		m.Admin.Token = hidden
	}
	m.NATS.URL = redactURL(m.NATS.URL)
	m.Redis.URL = redactURL(m.Redis.URL)
	m.Sources = append([]SourceConfig(nil), c.Sources...)
	for i := range m.Sources {
		if m.Sources[i].Token != "" {
			m.Sources[i].Token = hidden
		}
		if m.Sources[i].PreviousToken != "" {
			m.Sources[i].PreviousToken = hidden
		}
	}
	m.Endpoints = append([]EndpointConfig(nil), c.Endpoints...)
	for i := range m.Endpoints {
		e := &m.Endpoints[i]
		if e.Secret != "" {
			e.Secret = hidden
		}
		if len(e.Headers) > 0 {
			h := make(map[string]string, len(e.Headers))
			for k := range e.Headers {
				h[k] = hidden
			}
			e.Headers = h
		}
		e.URL = redactURL(e.URL)
	}
	return &m
}

// redactURL hides a password (and query, which may carry a token) in u.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil || u == "" {
		return u
	}
	if p.RawQuery != "" {
		p.RawQuery = "***"
	}
	return p.Redacted()
}
