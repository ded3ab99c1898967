package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/discord"
	"github.com/msn-bridge/msn-bridge/matrix"
)

// shutdownTimeout bounds the ordered shutdown: frontends, then MSN sessions.
const shutdownTimeout = 30 * time.Second

// App is one running bridge: the database, the core, the enabled frontends and the metrics
// endpoint. Build it with NewApp, then Run.
type App struct {
	cfg      *Config
	log      zerolog.Logger
	db       *dbutil.Database
	registry *prometheus.Registry
	core     *bridge.Core
	matrix   *matrix.Frontend
	discord  *discord.Frontend
	metrics  *metricsServer
}

// applyMemoryLimit sets the runtime's soft memory limit to limit (a valid memory_limit), unless
// it is empty or the GOMEMLIMIT environment variable (env) already set one, which wins.
func applyMemoryLimit(limit, env string, log zerolog.Logger) {
	n, err := parseMemoryLimit(limit)
	switch {
	case err != nil || n == 0:
	case env != "":
		log.Info().Str("gomemlimit", env).Msg("Memory limit from GOMEMLIMIT; memory_limit ignored")
	default:
		debug.SetMemoryLimit(n)
		log.Info().Str("memory_limit", limit).Msg("Memory limit set")
	}
}

// warnInsecurePassport logs a warning for each switch that weakens how the MSN password
// travels to Passport, so that one left on by mistake shows at every start.
func warnInsecurePassport(m *MSNConfig, log zerolog.Logger) {
	if m.InsecureSkipVerify {
		log.Warn().Str("key", "msn.insecure_skip_verify").
			Msg("Passport TLS certificates are not verified: anyone between the bridge and the server can read MSN passwords. Only for a local test server")
	}
	if m.AllowInsecurePassport {
		log.Warn().Str("key", "msn.allow_insecure_passport").
			Msg("Passport may run over plain http: MSN passwords can travel in clear. Only for a local test server")
	}
}

// NewApp opens the database, loads the credentials key and builds the core and frontends. It
// connects to nothing yet.
func NewApp(cfg *Config) (*App, error) {
	log, err := compileLogger(&cfg.Logging)
	if err != nil {
		return nil, fmt.Errorf("failed to set up logging: %w", err)
	}
	return newAppWithLogger(cfg, *log)
}

func newAppWithLogger(cfg *Config, log zerolog.Logger) (*App, error) {
	a := &App{cfg: cfg, log: log, registry: newRegistry()}
	applyMemoryLimit(cfg.MemoryLimit, os.Getenv("GOMEMLIMIT"), log)
	warnInsecurePassport(&cfg.MSN, log)
	key, err := bridge.LoadKey(cfg.MSN.Credentials, os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("failed to load the credentials key: %w", err)
	}
	cipher, err := bridge.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("failed to load the credentials key: %w", err)
	}
	if err = prepareDatabase(cfg.Database, log); err != nil {
		return nil, fmt.Errorf("failed to prepare the database: %w", err)
	}
	a.db, err = dbutil.NewFromConfig("msn-bridge", cfg.DatabaseConfig(), dbutil.ZeroLogger(log.With().Str("component", "database").Logger()))
	if err != nil {
		return nil, fmt.Errorf("failed to open the database: %w", err)
	}
	store := bridge.NewStore(a.db, cipher, log)
	metrics, err := bridge.NewMetrics(a.registry)
	if err != nil {
		a.db.Close()
		return nil, fmt.Errorf("failed to register metrics: %w", err)
	}
	coreCfg := cfg.MSN.Core
	coreCfg.MSN = cfg.MSNClientConfig()
	a.core, err = bridge.NewCore(coreCfg, bridge.Options{Store: store, Log: log, Metrics: metrics})
	if err != nil {
		a.db.Close()
		return nil, err
	}
	if cfg.Matrix.Enabled {
		mcfg := cfg.Matrix.Connector
		mcfg.Version = versionString()
		a.matrix, err = matrix.New(a.core, cfg.BridgeConfig(), mcfg, a.db, log)
		if err != nil {
			a.db.Close()
			return nil, fmt.Errorf("failed to set up the Matrix frontend: %w", err)
		}
	}
	if cfg.Discord.Enabled {
		a.discord, err = discord.New(a.core, cfg.Discord, log)
		if err != nil {
			a.db.Close()
			return nil, fmt.Errorf("failed to set up the Discord frontend: %w", err)
		}
	}
	return a, nil
}

// Core returns the bridge core.
func (a *App) Core() *bridge.Core { return a.core }

// Start upgrades the database, loads the stored accounts, starts the frontends (so each is
// listening before MSN events flow), then logs the stored accounts back in at the configured
// rate. On error everything already started is stopped again.
func (a *App) Start(ctx context.Context) error {
	if err := a.core.Store().Upgrade(ctx); err != nil {
		return fmt.Errorf("failed to upgrade the database: %w", err)
	}
	if a.cfg.Metrics.Enabled {
		m, err := startMetrics(a.cfg.Metrics.Listen, a.registry, a.core, a.log)
		if err != nil {
			return fmt.Errorf("failed to start the metrics server (metrics.listen): %w", err)
		}
		a.metrics = m
		a.log.Info().Str("address", m.Addr()).Msg("Serving /metrics and /health")
	}
	// The stored accounts first, so the frontends find them when they start (and show them
	// connecting, not missing), then the frontends, then the logins.
	if err := a.core.Load(ctx); err != nil {
		a.Stop()
		return fmt.Errorf("failed to load the stored accounts: %w", err)
	}
	if a.matrix != nil {
		if err := a.matrix.Start(ctx); err != nil {
			a.Stop()
			return fmt.Errorf("failed to start the Matrix frontend: %w", err)
		}
	}
	if a.discord != nil {
		if err := a.discord.Start(ctx); err != nil {
			a.Stop()
			return fmt.Errorf("failed to start the Discord frontend: %w", err)
		}
	}
	if err := a.core.Start(ctx); err != nil {
		a.Stop()
		return fmt.Errorf("failed to start the core: %w", err)
	}
	a.log.Info().Msg("Bridge started")
	return nil
}

// Stop shuts down in order: frontends first (no new user actions), then the MSN sessions (which
// finish what is in flight), then the metrics endpoint and the database. It is bounded by
// shutdownTimeout.
func (a *App) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if a.discord != nil {
		a.discord.Stop(ctx)
	}
	if a.matrix != nil {
		a.matrix.Stop(ctx)
	}
	if err := a.core.Stop(ctx); err != nil && !errors.Is(err, context.Canceled) {
		a.log.Warn().Err(bridge.ScrubError(err)).Msg("MSN sessions did not stop cleanly")
	}
	if a.metrics != nil {
		a.metrics.Shutdown(ctx)
	}
	if err := a.db.Close(); err != nil {
		a.log.Warn().Err(bridge.ScrubError(err)).Msg("Failed to close the database")
	}
	a.log.Info().Msg("Bridge stopped")
}

// Run starts the bridge and blocks until ctx is cancelled (SIGINT/SIGTERM), then stops it. A
// cancellation while starting (for example while waiting for the homeserver) is a clean stop.
func (a *App) Run(ctx context.Context) error {
	if err := a.Start(ctx); err != nil {
		if ctx.Err() != nil {
			a.log.Info().Err(bridge.ScrubError(err)).Msg("Stopped while starting")
			return nil
		}
		return err
	}
	<-ctx.Done()
	a.log.Info().Msg("Shutting down")
	a.Stop()
	return nil
}
