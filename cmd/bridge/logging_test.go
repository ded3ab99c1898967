package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func TestRedactWriter(t *testing.T) {
	tests := []struct {
		name string
		log  func(l zerolog.Logger)
		gone string
		kept string
	}{
		{"unknown command", func(l zerolog.Logger) {
			l.Debug().Str("mx_command", "login").Str("mx_command", `hunter2"\x`).Msg("Received unknown command")
		}, "hunter2", `"message":"Received unknown command"`},
		{"known command", func(l zerolog.Logger) {
			l.Debug().Str("mx_command", "login").Msg("Received command")
		}, "", `"mx_command":"login"`},
		{"other line", func(l zerolog.Logger) { l.Info().Str("handle", "a@b.c").Msg("Logged in") }, "", `"handle":"a@b.c"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			tt.log(zerolog.New(redactWriter{&buf}))
			out := buf.String()
			if tt.gone != "" && strings.Contains(out, tt.gone) {
				t.Errorf("%q still in %s", tt.gone, out)
			}
			if !strings.Contains(out, tt.kept) {
				t.Errorf("%q missing from %s", tt.kept, out)
			}
		})
	}
	// Per-writer levels survive the wrapper.
	var info, all bytes.Buffer
	lw := zerolog.MultiLevelWriter(zerolog.ConsoleWriter{Out: &all, NoColor: true}, levelFilter{&info, zerolog.InfoLevel})
	l := zerolog.New(redactWriter{lw}).Level(zerolog.TraceLevel)
	l.Debug().Str("mx_command", "secret-word").Msg("Received unknown command")
	l.Info().Msg("hello")
	if strings.Contains(all.String(), "secret-word") || !strings.Contains(all.String(), "[redacted]") || strings.Contains(info.String(), "unknown") {
		t.Errorf("console %q, info-only %q", all.String(), info.String())
	}
}

// levelFilter writes only events at min or above.
type levelFilter struct {
	buf *bytes.Buffer
	min zerolog.Level
}

func (f levelFilter) Write(p []byte) (int, error) { return f.buf.Write(p) }
func (f levelFilter) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	if l < f.min {
		return len(p), nil
	}
	return f.buf.Write(p)
}
