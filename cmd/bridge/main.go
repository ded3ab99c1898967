// Command bridge runs msn-bridge: MSN accounts mirrored into Matrix (as an appservice) and
// Discord (as a bot).
//
//	bridge -c config.yaml           run with a config file
//	bridge -c config.yaml -g -r registration.yaml
//	                                generate the appservice registration and store its tokens
//	bridge -e -c config.yaml        write the example config
//	bridge                          with no config.yaml: the demo (an embedded MSN network with
//	                                contacts that answer, a local Dendrite, the bridge)
//	bridge --demo                   the demo, even where a config.yaml exists
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

	_ "github.com/lib/pq" // database.type: postgres

	msnbridge "github.com/msn-bridge/msn-bridge"
	"github.com/msn-bridge/msn-bridge/bridge"
)

// Version is set at build time with -ldflags "-X main.Version=…".
var Version = "dev"

// Exit codes, so service managers and scripts can tell failures apart.
const (
	exitOK = iota
	exitUsage
	exitConfig
	exitStartup
	exitRuntime
)

type options struct {
	configPath       string
	configGiven      bool
	registrationPath string
	generateReg      bool
	writeExample     bool
	version          bool
	demo             bool
	demoDir          string
	noUpdate         bool
}

// usageHeader opens the -h output: what the bridge does without a config file.
const usageHeader = `Usage: bridge [flags]

msn-bridge connects MSN Messenger accounts to Matrix (as an appservice) and Discord (as a bot).

  bridge -e -c config.yaml      write the example config, then edit it
  bridge -g -c config.yaml      generate the appservice registration for your homeserver
  bridge -c config.yaml         run the bridge

Without a config file (no config.yaml here and no -c), or with --demo, the bridge runs its demo
instead: an embedded MSN network with contacts that answer, a local Dendrite homeserver on
127.0.0.1:8008 and the bridge between them, with its data in -demo-dir. It never connects to a
real MSN server or homeserver then. A config file with an empty msn.server is an error.

Flags:
`

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("bridge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "msn-bridge %s\n\n", versionString())
		fmt.Fprint(fs.Output(), usageHeader)
		fs.PrintDefaults()
	}
	for _, name := range []string{"c", "config"} {
		fs.StringVar(&o.configPath, name, "config.yaml", "path to the config file")
	}
	for _, name := range []string{"r", "registration"} {
		fs.StringVar(&o.registrationPath, name, "registration.yaml", "where -g writes the appservice registration")
	}
	for _, name := range []string{"g", "generate-registration"} {
		fs.BoolVar(&o.generateReg, name, false, "generate the appservice registration, store its tokens in the config, and quit")
	}
	for _, name := range []string{"e", "generate-example-config"} {
		fs.BoolVar(&o.writeExample, name, false, "write the example config to the config path and quit")
	}
	fs.BoolVar(&o.version, "version", false, "print the version and quit")
	fs.BoolVar(&o.demo, "demo", false, "run the demo (an embedded MSN network and a local Dendrite), not a configured bridge")
	for _, name := range []string{"n", "no-update"} {
		fs.BoolVar(&o.noUpdate, name, false, "do not write the upgraded config (new keys, generated secrets) back to the config file")
	}
	fs.StringVar(&o.demoDir, "demo-dir", "msn-bridge-demo", "where the demo keeps its database, key and homeserver")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "c" || f.Name == "config" {
			o.configGiven = true
		}
	})
	return o, nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	switch {
	case o.version:
		fmt.Fprintln(stdout, "msn-bridge", versionString())
		return exitOK
	case o.writeExample:
		return writeExample(o.configPath, stdout, stderr)
	}

	path := o.configPath
	if o.demo && o.generateReg {
		fmt.Fprintln(stderr, "--demo and -g do not go together: the demo needs no registration")
		return exitUsage
	}
	if _, err := os.Stat(path); (o.demo || errors.Is(err, os.ErrNotExist)) && !o.configGiven && !o.generateReg {
		path = "" // no config at all, or --demo without -c: the demo on the defaults
	} else if err != nil {
		fmt.Fprintln(stderr, "Failed to read config:", err)
		return exitConfig
	}
	// -g changes nothing in the file but the two tokens (the next start upgrades it), and
	// nothing at all when it refuses.
	cfg, err := loadConfig(path, !o.noUpdate && !o.generateReg, os.Environ())
	if err != nil {
		fmt.Fprintln(stderr, "Invalid config:", err)
		return exitConfig
	}
	cfg.demo = cfg.demo || o.demo
	if o.generateReg {
		if err := generateRegistration(path, o.registrationPath, cfg); err != nil {
			fmt.Fprintln(stderr, "Failed to generate the registration:", err)
			return exitConfig
		}
		fmt.Fprintf(stdout, "Wrote %s and stored its tokens in %s. Add the registration to your homeserver's app service config files and restart it.\n", o.registrationPath, path)
		return exitOK
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.Demo() {
		if err := runDemo(ctx, cfg, o.demoDir, stdout); err != nil {
			fmt.Fprintln(stderr, "Demo failed:", bridge.ScrubError(err))
			return exitRuntime
		}
		return exitOK
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "Invalid config %s:\n%s\n", path, indent(err.Error()))
		return exitConfig
	}
	app, err := NewApp(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "Failed to start:", bridge.ScrubError(err))
		return exitStartup
	}
	warnIfExposed(app.log, "config file", path)
	if err := app.Run(ctx); err != nil {
		fmt.Fprintln(stderr, "Bridge stopped with an error:", bridge.ScrubError(err))
		return exitRuntime
	}
	return exitOK
}

func writeExample(path string, stdout, stderr io.Writer) int {
	if path == "-" {
		_, _ = stdout.Write(msnbridge.ExampleConfig)
		return exitOK
	}
	if _, err := os.Stat(path); err == nil {
		fmt.Fprintln(stderr, path, "already exists; remove it to write a new example")
		return exitConfig
	}
	if err := os.WriteFile(path, msnbridge.ExampleConfig, 0o600); err != nil {
		fmt.Fprintln(stderr, "Failed to write the example config:", err)
		return exitConfig
	}
	fmt.Fprintln(stdout, "Wrote the example config to", path)
	return exitOK
}

func versionString() string {
	v := Version
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 8 {
				v += " (" + s.Value[:8] + ")"
			}
		}
	}
	return v
}

func indent(s string) string {
	out := "  "
	for _, r := range s {
		out += string(r)
		if r == '\n' {
			out += "  "
		}
	}
	return out
}
