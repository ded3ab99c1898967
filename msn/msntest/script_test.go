package msntest

import (
	"bufio"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// A replay script (testdata/*.txt) is a list of lines, each for one connection tag:
//
//	# comment
//	@tag connect ns|ds|sb|{var}   open a connection (ns, ds, sb: the server's addresses)
//	@tag closed                   expect the server to close the connection
//	@tag passport HANDLE PW [N]   Passport 1.4 over HTTPS with the tag's last TWN S challenge;
//	                              sets {ticket}; with N, expect HTTP status N and no ticket
//	tag> LINE                     send LINE; following "tag|" lines are its payload
//	tag< PATTERN                  the tag's next server command must match PATTERN (its length
//	                              token included); following "tag|" lines must match the
//	                              payload line by line (CR dropped), "tag|*" skips it
//
// In patterns {*} matches anything and {name} matches the variable's value, or captures one
// token into it when unset. In sent lines {name} is replaced by the variable's value.
// Variables ns, ds and sb hold the server's addresses.

type step struct {
	lineNo  int
	tag     string
	kind    string // "@", ">", "<"
	text    string
	payload []string
	anyPay  bool
}

var stepRe = regexp.MustCompile(`^(@?)([a-zA-Z0-9]+)([<>|])? ?(.*)$`)

func loadScript(t *testing.T, path string) []step {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var steps []step
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "@") {
			tag, rest, _ := strings.Cut(line[1:], " ")
			steps = append(steps, step{lineNo: n, tag: tag, kind: "@", text: rest})
			continue
		}
		i := strings.IndexAny(line, "<>|")
		if i <= 0 {
			t.Fatalf("%s:%d: bad line %q", path, n, line)
		}
		tag, kind, text := line[:i], line[i:i+1], strings.TrimPrefix(line[i+1:], " ")
		if kind == "|" {
			if len(steps) == 0 || steps[len(steps)-1].tag != tag || steps[len(steps)-1].kind == "@" {
				t.Fatalf("%s:%d: payload line without a command", path, n)
			}
			last := &steps[len(steps)-1]
			if text == "*" {
				last.anyPay = true
			} else {
				last.payload = append(last.payload, text)
			}
			continue
		}
		steps = append(steps, step{lineNo: n, tag: tag, kind: kind, text: text})
	}
	return steps
}

var varRe = regexp.MustCompile(`\{(\*|[a-z][a-z0-9_]*)\}`)

// matchPattern matches s against pattern, capturing unset variables into vars.
func matchPattern(pattern, s string, vars map[string]string) bool {
	var re strings.Builder
	var names []string
	re.WriteString("^")
	last := 0
	for _, m := range varRe.FindAllStringSubmatchIndex(pattern, -1) {
		re.WriteString(regexp.QuoteMeta(pattern[last:m[0]]))
		name := pattern[m[2]:m[3]]
		switch v, ok := vars[name]; {
		case name == "*":
			re.WriteString(".*")
		case ok:
			re.WriteString(regexp.QuoteMeta(v))
		default:
			re.WriteString(`(\S+)`)
			names = append(names, name)
		}
		last = m[1]
	}
	re.WriteString(regexp.QuoteMeta(pattern[last:]))
	re.WriteString("$")
	got := regexp.MustCompile(re.String()).FindStringSubmatch(s)
	if got == nil {
		return false
	}
	for i, n := range names {
		vars[n] = got[i+1]
	}
	return true
}

func substitute(s string, vars map[string]string) string {
	return varRe.ReplaceAllStringFunc(s, func(m string) string {
		if v, ok := vars[m[1:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

// runScript replays a script against s and returns the variables it captured.
func runScript(t *testing.T, s *Server, path string) map[string]string {
	t.Helper()
	steps := loadScript(t, path)
	vars := map[string]string{"ns": s.NSAddr(), "ds": s.DispatchAddr(), "sb": s.SBAddr()}
	conns := map[string]*rawClient{}
	challenges := map[string]string{}
	for _, st := range steps {
		where := path + ":" + strconv.Itoa(st.lineNo)
		switch st.kind {
		case "@":
			f := strings.Fields(st.text)
			if len(f) == 0 {
				t.Fatalf("%s: empty directive", where)
			}
			switch f[0] {
			case "connect":
				addr := substitute(f[1], vars)
				if v, ok := vars[f[1]]; ok {
					addr = v
				}
				conns[st.tag] = dialRaw(t, addr)
			case "closed":
				if got := conns[st.tag].expectClosed(); len(got) != 0 {
					t.Fatalf("%s: expected close, got %v", where, got[0].String())
				}
			case "passport":
				tk, status := passport(t, s, f[1], f[2], challenges[st.tag])
				if len(f) > 3 {
					if strconv.Itoa(status) != f[3] || tk != "" {
						t.Fatalf("%s: passport status %d ticket %q, want %s", where, status, tk, f[3])
					}
					continue
				}
				if tk == "" {
					t.Fatalf("%s: passport failed with HTTP %d", where, status)
				}
				vars["ticket"] = tk
			default:
				t.Fatalf("%s: unknown directive %q", where, f[0])
			}
		case ">":
			c := conns[st.tag]
			line := substitute(st.text, vars)
			if st.payload == nil {
				c.send(line)
				continue
			}
			p := strings.Join(st.payload, "\r\n")
			f := strings.Fields(line)
			if f[len(f)-1] != strconv.Itoa(len(p)) {
				t.Fatalf("%s: payload is %d bytes, line says %s", where, len(p), f[len(f)-1])
			}
			c.write([]byte(line + "\r\n" + p))
		case "<":
			c := conns[st.tag]
			cmd, err := c.tryRead()
			if err != nil {
				t.Fatalf("%s: want %q, read failed: %v", where, st.text, err)
			}
			got := cmd.String()
			if !matchPattern(st.text, got, vars) {
				t.Fatalf("%s: got  %q\nwant %q", where, got, st.text)
			}
			if cmd.Name == "USR" && cmd.Arg(1) == "TWN" && cmd.Arg(2) == "S" {
				challenges[st.tag] = cmd.Arg(3)
			}
			if st.anyPay || st.payload == nil {
				if st.payload == nil && !st.anyPay && len(cmd.Payload) > 0 {
					t.Fatalf("%s: unexpected payload %q", where, cmd.Payload)
				}
				continue
			}
			// Lines are compared without their CR: the length token already pins CRLF vs LF.
			lines := strings.Split(string(cmd.Payload), "\n")
			for i := range lines {
				lines[i] = strings.TrimSuffix(lines[i], "\r")
			}
			if len(lines) != len(st.payload) {
				t.Fatalf("%s: payload has %d lines, want %d: %q", where, len(lines), len(st.payload), cmd.Payload)
			}
			for i := range lines {
				if !matchPattern(st.payload[i], lines[i], vars) {
					t.Fatalf("%s: payload line %d: got %q, want %q", where, i+1, lines[i], st.payload[i])
				}
			}
		}
	}
	return vars
}

// TestSeedTranscript replays the project's seed transcript (an MSNP10 client against a
// dispatch + NS pair) under SeedTranscriptOptions.
func TestSeedTranscript(t *testing.T) {
	s := newServer(t, SeedTranscriptOptions())
	vars := runScript(t, s, "testdata/seed-transcript.txt")
	if !isGUID(vars["guid"]) {
		t.Fatalf("C= value %q is not a GUID", vars["guid"])
	}
	if got := s.Lists("example@hotmail.com", "tel:15551111222"); got != FL|AL {
		t.Fatalf("tel: contact lists = %d, want FL|AL", got)
	}
}

// escargotAccounts creates the captures' accounts.
func escargotAccounts(t *testing.T, s *Server) {
	t.Helper()
	for _, a := range [][3]string{{"alice@example.com", "alicepw", "Alice"}, {"bob@example.com", "bobpw", "Bob"}} {
		if err := s.AddAccount(a[0], a[1], a[2]); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEscargotTwoAccounts replays testdata/escargot-two-accounts.txt, adapted from the capture
// of the same name, in the default (Escargot) configuration.
func TestEscargotTwoAccounts(t *testing.T) {
	s := newServer(t, Options{})
	escargotAccounts(t, s)
	vars := runScript(t, s, "testdata/escargot-two-accounts.txt")
	if len(vars["sid"]) != 31 || len(vars["ackie"]) != 20 || len(vars["bckie"]) != 20 {
		t.Fatalf("session id %q / cookies %q %q: wrong shapes", vars["sid"], vars["ackie"], vars["bckie"])
	}
}

// TestEscargotEdgeCases replays testdata/escargot-edge-cases.txt.
func TestEscargotEdgeCases(t *testing.T) {
	s := newServer(t, Options{})
	escargotAccounts(t, s)
	if err := s.AddContact("bob@example.com", "alice@example.com", FL); err != nil {
		t.Fatal(err)
	}
	if err := s.AddContact("alice@example.com", "bob@example.com", FL|AL); err != nil {
		t.Fatal(err)
	}
	runScript(t, s, "testdata/escargot-edge-cases.txt")
}
