package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// metricsServer serves /metrics (Prometheus) and /health.
type metricsServer struct {
	srv *http.Server
	ln  net.Listener
	log zerolog.Logger
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// startMetrics listens on addr and serves until Shutdown. health reports the accounts by state.
func startMetrics(addr string, reg *prometheus.Registry, core *bridge.Core, log zerolog.Logger) (*metricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: nil}))
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		states := map[string]int{}
		for _, acc := range core.Accounts() {
			states[string(acc.State().State)]++
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "ok", "accounts": states})
	})
	m := &metricsServer{
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		ln:  ln,
		log: log,
	}
	go func() {
		if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Err(bridge.ScrubError(err)).Msg("Metrics server failed")
		}
	}()
	return m, nil
}

func (m *metricsServer) Addr() string { return m.ln.Addr().String() }

func (m *metricsServer) Shutdown(ctx context.Context) {
	if err := m.srv.Shutdown(ctx); err != nil {
		m.log.Warn().Err(bridge.ScrubError(err)).Msg("Failed to stop the metrics server cleanly")
	}
}
