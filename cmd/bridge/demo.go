package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/appservice"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/internal/dendrite"
	"github.com/msn-bridge/msn-bridge/msn/msntest"
)

// The demo's fixed names, printed for the person trying it.
const (
	demoMSNHandle    = "you@demo.msn"
	demoMSNPassword  = "demo"
	demoMatrixUser   = "demo"
	demoMatrixPass   = "msn-demo-password"
	demoSharedSecret = "msn-bridge-demo-shared-secret"
	demoHSPort       = 8008
	demoASPort       = 29355
)

// demoContact is a contact of the demo account on the embedded MSN network.
type demoContact struct {
	handle, name, status, psm string
	bot                       msntest.BotFunc
}

var demoContacts = []demoContact{
	{"alice@demo.msn", "Alice", "NLN", "Ask me anything, I answer every message", aliceBot},
	{"bob@demo.msn", "Bob", "AWY", "♫ changes his status every few seconds", msntest.EchoBot},
	{"carol@demo.msn", "Carol", "FLN", "", msntest.EchoBot},
}

// aliceBot answers like a patient friend: typing first, then a reply; a nudge gets a nudge.
func aliceBot(_ context.Context, chat *msntest.BotChat, msg msntest.BotMessage) {
	switch {
	case msg.IsNudge():
		_ = chat.Nudge()
		_ = chat.Say("Hey, no need to shake my window! 😄")
	case msg.IsText():
		_ = chat.Typing()
		_ = chat.Say(fmt.Sprintf("You said %q (%d characters). Try nudging me, or messaging Carol while she is offline.",
			msg.Body, len([]rune(msg.Body))))
	}
}

// runDemo runs the whole product on one machine: the embedded MSN network with demo contacts,
// a local Dendrite, and the bridge between them. It blocks until ctx is cancelled.
func runDemo(ctx context.Context, cfg *Config, dir string, out io.Writer) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("failed to create %s: %w", dir, err)
	}
	dir, _ = filepath.Abs(dir)
	log, err := compileLogger(&cfg.Logging)
	if err != nil {
		return fmt.Errorf("failed to set up logging: %w", err)
	}
	warnIfExposed(*log, "demo's data directory", dir)

	network, err := startDemoNetwork(*log)
	if err != nil {
		return err
	}
	defer network.Close()
	stopAnimation := animateDemoPresence(network)
	defer stopAnimation()

	caFile := filepath.Join(dir, "msn-ca.pem")
	if err := os.WriteFile(caFile, network.CAPEM(), 0o600); err != nil {
		return fmt.Errorf("failed to write the demo network's CA: %w", err)
	}

	hsPort, asPort := freePortOr(demoHSPort), freePortOr(demoASPort)
	hs, err := dendrite.New(dendrite.Options{
		Dir:          filepath.Join(dir, "dendrite"),
		Port:         hsPort,
		SharedSecret: demoSharedSecret,
		LogLevel:     "warn",
	})
	if err != nil {
		return fmt.Errorf("the demo needs a local Dendrite (make run installs it): %w", err)
	}

	// The demo's bridge config: the defaults, pointed at the local pieces.
	cfg.MSN.Server = network.NSAddr()
	cfg.MSN.LoginURL = network.HTTPSLoginURL()
	cfg.MSN.CAFile = caFile
	cfg.MSN.Credentials.KeyFile = filepath.Join(dir, "msn-bridge.key")
	cfg.Database.Type = "sqlite"
	cfg.Database.URI = "file:" + filepath.Join(dir, "msn-bridge.db") +
		"?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(5000)&_txlock=immediate"
	cfg.Matrix.Enabled = true
	cfg.Matrix.Connector.IgnoreUnsupportedServer = true
	cfg.Matrix.Homeserver.Address = hs.URL
	cfg.Matrix.Homeserver.Domain = hs.ServerName
	cfg.Matrix.AppService.Hostname = "127.0.0.1"
	cfg.Matrix.AppService.Port = uint16(asPort)
	cfg.Matrix.AppService.Address = "http://127.0.0.1:" + strconv.Itoa(asPort)
	cfg.Matrix.Bridge.Permissions = nil
	if err := yaml.Unmarshal([]byte(`{"localhost": "admin"}`), &cfg.Matrix.Bridge.Permissions); err != nil {
		return fmt.Errorf("failed to set demo permissions: %w", err)
	}
	cfg.Discord.Enabled = false
	regYAML, err := demoRegistration(cfg, filepath.Join(dir, "registration.yaml"))
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("demo config: %w", err)
	}

	if err := hs.Start(regYAML); err != nil {
		return fmt.Errorf("failed to start Dendrite (log: %s): %w", hs.LogPath, err)
	}
	defer func() {
		if err := hs.Stop(); err != nil {
			log.Warn().Err(bridge.ScrubError(err)).Msg("Failed to stop Dendrite")
		}
	}()
	if err := hs.RegisterUser(ctx, demoMatrixUser, demoMatrixPass); err != nil && !errors.Is(err, mautrix.MUserInUse) {
		return fmt.Errorf("failed to create the demo Matrix user: %w", err)
	}

	app, err := newAppWithLogger(cfg, *log)
	if err != nil {
		return err
	}
	if err := app.Start(ctx); err != nil {
		return err
	}
	printDemoBanner(out, hs.URL, cfg)
	<-ctx.Done()
	log.Info().Msg("Shutting down the demo")
	app.Stop()
	return nil
}

// startDemoNetwork starts the embedded MSN network: the demo account, three contacts (Alice
// answers, Bob's presence keeps changing, Carol is offline) and a pending contact request.
func startDemoNetwork(log zerolog.Logger) (*msntest.Server, error) {
	netLog := log.With().Str("component", "demo_network").Logger().Level(zerolog.WarnLevel)
	srv := msntest.New(msntest.Options{Log: &netLog, EventLimit: -1})
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("failed to start the demo MSN network: %w", err)
	}
	setup := func() error {
		if err := srv.AddAccount(demoMSNHandle, demoMSNPassword, "Demo user"); err != nil {
			return err
		}
		for _, c := range demoContacts {
			if err := srv.AddBot(c.handle, "x-"+c.handle, c.name, c.bot); err != nil {
				return err
			}
			if err := srv.AddFriends(demoMSNHandle, c.handle); err != nil {
				return err
			}
			if err := srv.SetPresence(c.handle, c.status, c.psm); err != nil {
				return err
			}
		}
		// Dave added the demo account and waits for an answer: a pending request to accept.
		if err := srv.AddBot("dave@demo.msn", "x-dave", "Dave", msntest.EchoBot); err != nil {
			return err
		}
		if err := srv.AddContact("dave@demo.msn", demoMSNHandle, msntest.FL|msntest.AL); err != nil {
			return err
		}
		if err := srv.AddContact(demoMSNHandle, "dave@demo.msn", msntest.RL|msntest.PL); err != nil {
			return err
		}
		return srv.SetPresence("dave@demo.msn", "NLN", "waiting for you to accept me")
	}
	if err := setup(); err != nil {
		srv.Close()
		return nil, fmt.Errorf("failed to set up the demo MSN network: %w", err)
	}
	return srv, nil
}

// animateDemoPresence changes Bob's status and personal message every few seconds, so live
// presence can be watched. The returned function stops it.
func animateDemoPresence(srv *msntest.Server) (stop func()) {
	steps := []struct{ status, psm string }{
		{"NLN", "♫ Daft Punk - One More Time"},
		{"BSY", "In a meeting, back soon"},
		{"AWY", "Out for a walk"},
		{"LUN", "Lunch!"},
		{"NLN", "♫ Röyksopp - Eple"},
		{"BRB", ""},
	}
	ctx, cancel := context.WithCancel(srv.Context())
	go func() {
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-time.After(8*time.Second + time.Duration(rand.IntN(4000))*time.Millisecond):
			}
			s := steps[i%len(steps)]
			_ = srv.SetPresence("bob@demo.msn", s.status, s.psm)
		}
	}()
	return cancel
}

// demoRegistration returns the appservice registration for the demo homeserver and puts its
// tokens into cfg. The registration is kept in path, so Dendrite's data stays valid across runs.
func demoRegistration(cfg *Config, path string) ([]byte, error) {
	reg, err := appservice.LoadRegistration(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("failed to read %s: %w", path, err)
		}
		bcfg := cfg.BridgeConfig()
		reg = bcfg.GenerateRegistration()
	}
	reg.URL = cfg.Matrix.AppService.Address
	cfg.Matrix.AppService.ASToken = reg.AppToken
	cfg.Matrix.AppService.HSToken = reg.ServerToken
	if err := reg.Save(path); err != nil {
		return nil, fmt.Errorf("failed to save %s: %w", path, err)
	}
	if err := saveRegistrationMode(path); err != nil {
		return nil, err
	}
	return os.ReadFile(path)
}

func freePortOr(preferred int) int {
	if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(preferred)); err == nil {
		_ = ln.Close()
		return preferred
	}
	ports, err := dendrite.FreePorts(1)
	if err != nil {
		return preferred
	}
	return ports[0]
}

func printDemoBanner(out io.Writer, hsURL string, cfg *Config) {
	bot := "@" + cfg.Matrix.AppService.Bot.Username + ":" + cfg.Matrix.Homeserver.Domain
	lines := []string{
		"",
		"msn-bridge demo is running. Press Ctrl-C to stop.",
		"",
		"  1. Open any Matrix client (Element, Cinny, nheko, …) with homeserver " + hsURL,
		"     and sign in as " + demoMatrixUser + " / " + demoMatrixPass + ".",
		"  2. Start a chat with " + bot + " and send: login password",
		"     MSN e-mail: " + demoMSNHandle + "   password: " + demoMSNPassword,
		"  3. Your MSN contacts appear: Alice answers, Bob's presence keeps changing,",
		"     Carol is offline (messages to her are reported as not delivered),",
		"     and Dave waits for you to accept him (send: requests).",
		"  Commands in the bot chat: help, status away, psm <text>, name <text>, contacts, nudge …",
		"",
	}
	if cfg.Metrics.Enabled {
		lines = append(lines[:len(lines)-1], "  Metrics: http://"+cfg.Metrics.Listen+"/metrics   health: http://"+cfg.Metrics.Listen+"/health", "")
	}
	fmt.Fprintln(out, strings.Join(lines, "\n"))
}
