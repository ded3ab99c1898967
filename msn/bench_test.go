package msn

import (
	"bufio"
	"bytes"
	"io"
	"runtime"
	"testing"
	"time"
)

// benchStream is the seed stream repeated: 1,450 commands, 300 of them with payloads.
func benchStream(b *testing.B) (data []byte, cmds int) {
	data = bytes.Repeat(seedStream(), 50)
	r := NewReader(bytes.NewReader(data), ClientPayloads)
	for {
		if _, err := r.ReadCommand(); err != nil {
			if err != io.EOF {
				b.Fatal(err)
			}
			return data, cmds
		}
		cmds++
	}
}

// reportPerCommand adds ns/cmd, allocs/cmd and, where the system tells it, cpu-ns/cmd next
// to the per-batch figures; start is what mallocs returned before the timed loop. cpu-ns is
// the process's CPU time, the collector's threads included: on a loaded machine it moves far
// less than the elapsed time, which counts the waits for a CPU.
func reportPerCommand(b *testing.B, start counters, cmds int) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	n := float64(b.N) * float64(cmds)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/cmd")
	b.ReportMetric(float64(ms.Mallocs-start.mallocs)/n, "allocs/cmd")
	if cpu := processCPU(); cpu > 0 {
		b.ReportMetric(float64((cpu-start.cpu).Nanoseconds())/n, "cpu-ns/cmd")
	}
}

// counters are the runtime's malloc count and the process's CPU time at one moment.
type counters struct {
	mallocs uint64
	cpu     time.Duration
}

func mallocs() counters {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return counters{mallocs: ms.Mallocs, cpu: processCPU()}
}

func BenchmarkParseCommand(b *testing.B) {
	data, cmds := benchStream(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	m := mallocs()
	for b.Loop() {
		r := NewReader(bytes.NewReader(data), ClientPayloads)
		for {
			if _, err := r.ReadCommand(); err != nil {
				if err != io.EOF {
					b.Fatal(err)
				}
				break
			}
		}
	}
	reportPerCommand(b, m, cmds)
}

// BenchmarkParseCommandOld decodes the same bytes with refReader, the decoder Reader replaced,
// for a comparison within one run.
func BenchmarkParseCommandOld(b *testing.B) {
	data, cmds := benchStream(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	m := mallocs()
	for b.Loop() {
		r := newRefReader(bytes.NewReader(data), ClientPayloads)
		for {
			if _, err := r.ReadCommand(); err != nil {
				if err != io.EOF {
					b.Fatal(err)
				}
				break
			}
		}
	}
	reportPerCommand(b, m, cmds)
}

// BenchmarkFrame splits the same bytes into commands, lines, token offsets and payloads, as
// ReadCommand does before it copies anything: the framing alone.
func BenchmarkFrame(b *testing.B) {
	data, cmds := benchStream(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	r := NewReader(nil, ClientPayloads)
	src := bytes.NewReader(nil)
	m := mallocs()
	for b.Loop() {
		src.Reset(data)
		r.buf.init(src)
		for {
			var f frame
			if _, _, err := r.readFrame(&f); err != nil {
				if err != io.EOF {
					b.Fatal(err)
				}
				break
			}
			if f.size >= 0 {
				if _, err := r.buf.peek(f.size); err != nil {
					b.Fatal(err)
				}
				r.buf.r += f.size
			}
		}
	}
	reportPerCommand(b, m, cmds)
}

// BenchmarkScannerBaseline splits the same bytes into lines with bufio.Scanner: the floor a
// command parser cannot beat (it frames no payloads and builds no tokens). Its per-command
// figures divide by the same command count as BenchmarkParseCommand's.
func BenchmarkScannerBaseline(b *testing.B) {
	data, cmds := benchStream(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	m := mallocs()
	for b.Loop() {
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
		}
	}
	reportPerCommand(b, m, cmds)
}

func BenchmarkMarshalCommand(b *testing.B) {
	cmd := &Command{Name: "MSG", Args: []string{"12", "A"}, Payload: NewTextMessage("Hello, Bob! How are you doing today?", nil)}
	buf := make([]byte, 0, 512)
	b.SetBytes(int64(len(cmd.Marshal())))
	b.ReportAllocs()
	for b.Loop() {
		buf = cmd.AppendTo(buf[:0])
	}
}
