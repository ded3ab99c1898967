package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"maunium.net/go/mautrix/appservice"

	msnbridge "github.com/msn-bridge/msn-bridge"
)

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestFlags(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     string
		stderr     string
		notStderr  string
		notStdout  string
		skipStdout bool
	}{
		{name: "version", args: []string{"--version"}, code: exitOK, stdout: "msn-bridge " + Version},
		{name: "unknown flag", args: []string{"--frobnicate"}, code: exitUsage, stderr: "flag provided but not defined: -frobnicate"},
		{name: "usage lists flags", args: []string{"--frobnicate"}, code: exitUsage, stderr: "generate-registration"},
		{name: "stray argument", args: []string{"-c", "x.yaml", "extra"}, code: exitUsage, stderr: `unexpected argument "extra"`},
		{name: "help", args: []string{"-h"}, code: exitOK, stderr: "-config"},
		{name: "help tells what no config does", args: []string{"-h"}, code: exitOK, stderr: "Without a config file (no config.yaml here and no -c), or with --demo, the bridge runs its demo"},
		{name: "help lists --demo", args: []string{"-h"}, code: exitOK, stderr: "-demo\n"},
		{name: "demo needs no registration", args: []string{"--demo", "-g"}, code: exitUsage, stderr: "--demo and -g"},
		{name: "help shows version", args: []string{"-h"}, code: exitOK, stderr: "msn-bridge " + Version},
		{name: "no-update flag", args: []string{"-h"}, code: exitOK, stderr: "-no-update"},
		{name: "flag without value", args: []string{"-c"}, code: exitUsage, stderr: "flag needs an argument"},
		{name: "example to stdout", args: []string{"-e", "-c", "-"}, code: exitOK, stdout: "# msn-bridge configuration."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tt.code, stderr)
			}
			if !strings.Contains(stdout, tt.stdout) {
				t.Errorf("stdout %q does not contain %q", stdout, tt.stdout)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.stderr)
			}
		})
	}
}

func TestWriteExample(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	if code, _, stderr := runCmd(t, "-e", "-c", path); code != exitOK {
		t.Fatalf("-e: exit %d: %s", code, stderr)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, msnbridge.ExampleConfig) {
		t.Fatalf("the written example differs from the embedded one (%v)", err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("example written with mode %v, want 0600 (it will hold tokens)", st.Mode().Perm())
	}
	// A second -e never overwrites the user's file.
	if code, _, stderr := runCmd(t, "-e", "-c", path); code != exitConfig || !strings.Contains(stderr, "already exists") {
		t.Errorf("second -e: exit %d, stderr %q", code, stderr)
	}
}

func TestInvalidConfigExitCode(t *testing.T) {
	path := writeFile(t, "config.yaml", "msn:\n    server: nowhere\n")
	code, _, stderr := runCmd(t, "-c", path)
	if code != exitConfig {
		t.Fatalf("exit %d, want %d", code, exitConfig)
	}
	for _, want := range []string{"msn.server: must be host:port", "msn.login_url", "matrix.homeserver.domain", "matrix.appservice.as_token"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr %q does not name %s", stderr, want)
		}
	}
	if code, _, stderr := runCmd(t, "-c", filepath.Join(t.TempDir(), "missing.yaml")); code != exitConfig || !strings.Contains(stderr, "Failed to read config") {
		t.Errorf("missing -c file: exit %d, stderr %q", code, stderr)
	}
}

// exampleFor returns the example config with the homeserver domain set, as a user edits it.
func exampleFor(domain string) string {
	return strings.Replace(string(msnbridge.ExampleConfig), "domain: example.com", "domain: "+domain, 1)
}

// changedLines returns the lines of after that differ from before, which must have as many.
func changedLines(t *testing.T, before, after string) []string {
	t.Helper()
	b, a := strings.Split(before, "\n"), strings.Split(after, "\n")
	if len(a) != len(b) {
		t.Fatalf("line count changed from %d to %d", len(b), len(a))
	}
	var changed []string
	for i := range a {
		if a[i] != b[i] {
			changed = append(changed, a[i])
		}
	}
	return changed
}

func TestGenerateRegistration(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	regPath := filepath.Join(dir, "registration.yaml")
	original := exampleFor("localhost")
	if err := os.WriteFile(cfgPath, []byte(original), 0o640); err != nil {
		t.Fatal(err)
	}
	var prevAS string
	for i := range 2 { // a second run works too (new tokens in both files)
		code, stdout, stderr := runCmd(t, "-c", cfgPath, "-g", "-r", regPath)
		if code != exitOK {
			t.Fatalf("run %d: exit %d: %s", i, code, stderr)
		}
		if !strings.Contains(stdout, regPath) {
			t.Errorf("stdout %q does not name the registration", stdout)
		}
		reg, err := appservice.LoadRegistration(regPath)
		if err != nil {
			t.Fatalf("registration: %v", err)
		}
		cfg, err := LoadConfig(cfgPath)
		if err != nil {
			t.Fatalf("config after -g: %v", err)
		}
		as := cfg.Matrix.AppService
		if as.ASToken != reg.AppToken || as.HSToken != reg.ServerToken || as.ASToken == tokenPlaceholder || as.ASToken == prevAS {
			t.Errorf("run %d: config tokens %q/%q, registration %q/%q", i, as.ASToken, as.HSToken, reg.AppToken, reg.ServerToken)
		}
		prevAS = as.ASToken
		if reg.URL != as.Address || len(reg.Namespaces.UserIDs) != 2 ||
			reg.Namespaces.UserIDs[0].Regex != "^@msnbot:localhost$" || reg.Namespaces.UserIDs[1].Regex != "^@msn_.*:localhost$" {
			t.Errorf("registration %+v", reg)
		}
		after, _ := os.ReadFile(cfgPath)
		changed := changedLines(t, original, string(after))
		if len(changed) != 2 || !strings.Contains(changed[0], "as_token: \""+as.ASToken+"\"") || !strings.Contains(changed[1], "hs_token: \""+as.HSToken+"\"") {
			t.Errorf("run %d: changed lines %q, want only the two tokens", i, changed)
		}
		if st, _ := os.Stat(cfgPath); st.Mode().Perm() != 0o640 {
			t.Errorf("config mode changed to %v", st.Mode().Perm())
		}
		if st, _ := os.Stat(regPath); st.Mode().Perm() != 0o600 {
			t.Errorf("registration mode %v, want 0600", st.Mode().Perm())
		}
	}
}

// Token values of other shapes are replaced in place too; a file without the keys gets them.
func TestGenerateRegistrationShapes(t *testing.T) {
	tests := []struct {
		name, yaml string
		inPlace    bool
	}{
		{"plain with comments", "matrix:\n    homeserver:\n        domain: localhost # mine\n    appservice:\n        as_token: old # keep me\n\n        hs_token: old2\n", true},
		{"single quoted", "matrix:\n  homeserver: {domain: localhost}\n  appservice:\n    as_token: 'o''ld'\n    hs_token: 'x'   # c\n", true},
		{"empty values", "matrix:\n    homeserver:\n        domain: localhost\n    appservice:\n        as_token:\n        hs_token:   # later\n", true},
		{"crlf", "matrix:\r\n    homeserver:\r\n        domain: localhost\r\n    appservice:\r\n        as_token: \"a\"\r\n        hs_token: \"b\"\r\n", true},
		{"missing keys", "# my bridge\nmatrix:\n    homeserver:\n        domain: localhost\n", false},
		{"flow mapping", "# my bridge\nmatrix: {homeserver: {domain: localhost}, appservice: {as_token: a, hs_token: b}}\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfgPath := filepath.Join(dir, "config.yaml")
			if err := os.WriteFile(cfgPath, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			code, _, stderr := runCmd(t, "-c", cfgPath, "-g", "-r", filepath.Join(dir, "reg.yaml"))
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			reg, err := appservice.LoadRegistration(filepath.Join(dir, "reg.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := LoadConfig(cfgPath)
			if err != nil {
				t.Fatalf("config after -g: %v", err)
			}
			if cfg.Matrix.AppService.ASToken != reg.AppToken || cfg.Matrix.AppService.HSToken != reg.ServerToken {
				t.Errorf("tokens not stored")
			}
			after, _ := os.ReadFile(cfgPath)
			if tt.inPlace {
				if changed := changedLines(t, tt.yaml, string(after)); len(changed) > 2 {
					t.Errorf("changed lines %q", changed)
				}
				for _, keep := range []string{"# mine", "# keep me", "# c", "# later", "\r\n"} {
					if strings.Contains(tt.yaml, keep) && !strings.Contains(string(after), keep) {
						t.Errorf("%q lost:\n%s", keep, after)
					}
				}
			} else if !strings.Contains(string(after), "# my bridge") {
				t.Errorf("comment lost:\n%s", after)
			}
		})
	}
}

func TestGenerateRegistrationRefuses(t *testing.T) {
	t.Run("no config file", func(t *testing.T) {
		t.Chdir(t.TempDir())
		code, _, stderr := runCmd(t, "-g")
		if code != exitConfig || !strings.Contains(stderr, "config.yaml") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
		if _, err := os.Stat("registration.yaml"); err == nil {
			t.Error("a registration was written without a config")
		}
	})
	t.Run("example domain", func(t *testing.T) {
		dir := t.TempDir()
		cfgPath := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(cfgPath, msnbridge.ExampleConfig, 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := runCmd(t, "-c", cfgPath, "-g", "-r", filepath.Join(dir, "reg.yaml"))
		if code != exitConfig || !strings.Contains(stderr, "matrix.homeserver.domain") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
		if got, _ := os.ReadFile(cfgPath); !bytes.Equal(got, msnbridge.ExampleConfig) {
			t.Error("the config changed although -g refused")
		}
		if _, err := os.Stat(filepath.Join(dir, "reg.yaml")); err == nil {
			t.Error("a registration was written")
		}
	})
	t.Run("invalid config", func(t *testing.T) {
		cfgPath := writeFile(t, "config.yaml", "matrix:\n    homeserver:\n        domain: localhost\n    bogus: 1\n")
		code, _, stderr := runCmd(t, "-c", cfgPath, "-g", "-r", filepath.Join(t.TempDir(), "reg.yaml"))
		if code != exitConfig || !strings.Contains(stderr, "matrix.bogus: unknown key") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
}

// TestConfigWithoutServerIsNoDemo: a config file that leaves msn.server empty is refused, naming
// the key, instead of starting the demo network and a local homeserver in the admin's place.
func TestConfigWithoutServerIsNoDemo(t *testing.T) {
	path := writeFile(t, "config.yaml", exampleFor("example.org"))
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Demo() {
		t.Fatal("a config file with an empty msn.server runs the demo")
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "msn.server: must be set") {
		t.Fatalf("Validate = %v, want msn.server named", err)
	}
	code, _, stderr := runCmd(t, "-c", path)
	if code != exitConfig || !strings.Contains(stderr, "msn.server: must be set") || strings.Contains(stderr, "Demo failed") {
		t.Fatalf("exit %d, stderr %q: want a config error naming msn.server", code, stderr)
	}
}

// TestDemoFlagChoosesTheDemo: --demo runs the demo even where a config.yaml exists (which,
// without the flag, is run as the admin's bridge and refused for its empty msn.server). The demo
// here fails at once, on a data directory it cannot create, so that nothing is started.
func TestDemoFlagChoosesTheDemo(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("config.yaml", []byte(exampleFor("example.org")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("not-a-dir", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCmd(t, "--demo", "-demo-dir", filepath.Join(dir, "not-a-dir", "demo"))
	if code != exitRuntime || !strings.Contains(stderr, "Demo failed") {
		t.Fatalf("--demo: exit %d, stderr %q, want the demo chosen", code, stderr)
	}
	code, _, stderr = runCmd(t)
	if code != exitConfig || !strings.Contains(stderr, "msn.server: must be set") {
		t.Fatalf("without --demo: exit %d, stderr %q, want config.yaml refused for msn.server", code, stderr)
	}
}
