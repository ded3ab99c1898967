package main

import (
	"bytes"
	"fmt"
	"io"
	"regexp"

	"github.com/rs/zerolog"
	"go.mau.fi/zeroconfig"
)

// compileLogger builds the logger of the logging section with every line passing through
// redactWriter.
func compileLogger(c *zeroconfig.Config) (*zerolog.Logger, error) {
	log, err := c.Compile()
	if err != nil {
		return nil, err
	}
	if log.GetLevel() == zerolog.Disabled || len(c.Writers) == 0 {
		return log, nil
	}
	writers := make([]io.Writer, len(c.Writers))
	for i := range c.Writers {
		if writers[i], err = c.Writers[i].Compile(); err != nil {
			return nil, fmt.Errorf("failed to parse config for writer #%d: %w", i+1, err)
		}
	}
	var w io.Writer = writers[0]
	if len(writers) > 1 {
		w = zerolog.MultiLevelWriter(writers...)
	}
	out := log.Output(redactWriter{w})
	return &out, nil
}

// unknownCommandLine marks bridgev2's debug line for a management-room message that is not a
// command: it carries the message's first word in mx_command, and that word is a password
// when someone types it after the login prompt has gone.
var unknownCommandLine = []byte(`"message":"Received unknown command"`)

var mxCommandField = regexp.MustCompile(`"mx_command":"(?:[^"\\]|\\.)*"`)

// redactWriter removes user text that libraries put into log fields before it reaches the
// real writer. It receives each event as one JSON object, as every zerolog writer does.
type redactWriter struct {
	w io.Writer
}

func redact(p []byte) []byte {
	if bytes.Contains(p, unknownCommandLine) {
		return mxCommandField.ReplaceAll(p, []byte(`"mx_command":"[redacted]"`))
	}
	return p
}

func (r redactWriter) Write(p []byte) (int, error) {
	if _, err := r.w.Write(redact(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (r redactWriter) WriteLevel(level zerolog.Level, p []byte) (int, error) {
	lw, ok := r.w.(zerolog.LevelWriter)
	if !ok {
		return r.Write(p)
	}
	if _, err := lw.WriteLevel(level, redact(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}
