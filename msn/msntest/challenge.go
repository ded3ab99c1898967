package msntest

import (
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"time"

	"github.com/msn-bridge/msn-bridge/msn"
)

// msnp11Keys are the MSNP11 product id → product key pairs the server accepts in QRY
// (docs/protocol.md §3.11).
var msnp11Keys = map[string]string{
	"PROD0090YUAUV{2B": "YMM8C_H7KCQ2S_KL",
	"PROD0101{0RM?UBW": "CFHUR$52U_{VIX5T",
}

// msnp10Keys are the pairs answered with the basic MD5 method under MSNP10.
var msnp10Keys = map[string]string{
	"msmsgs@msnmsgr.com": "Q1P7W2E4J9R8U3S5",
}

// ChallengeResult records one CHL/QRY exchange.
type ChallengeResult struct {
	Handle    string
	Challenge string
	ProductID string
	Answer    string
	OK        bool
	Time      time.Time
}

// qryBasic is the MSNP10 answer: hex MD5 of challenge + key.
func qryBasic(chl, key string) string {
	h := md5.Sum([]byte(chl + key))
	return hex.EncodeToString(h[:])
}

// qryMSNP11 computes the MSNP11 challenge answer (docs/protocol.md §3.11). padAlways selects the
// "always append 8-len%8 zeros" padding variant.
func qryMSNP11(chl, prodID, prodKey string, padAlways bool) string {
	const m = 0x7FFFFFFF
	h := md5.Sum([]byte(chl + prodKey))
	var full, k [4]uint64
	for i := range 4 {
		full[i] = uint64(binary.LittleEndian.Uint32(h[4*i:]))
		k[i] = full[i] & m
	}
	s := chl + prodID
	if r := len(s) % 8; r != 0 || padAlways {
		s += strings.Repeat("0", 8-r)
	}
	w := make([]uint64, len(s)/4)
	for i := range w {
		w[i] = uint64(binary.LittleEndian.Uint32([]byte(s[4*i:]))) & m
	}
	var high, low uint64
	for i := 0; i+1 < len(w); i += 2 {
		t := (w[i] * 0x0E79A9C1) % m
		t = (k[0]*(t+high) + k[1]) % m
		high = (k[2]*((w[i+1]+t)%m) + k[3]) % m
		low += high + t
	}
	high = (high + k[1]) % m
	low = (low + k[3]) % m
	var out [16]byte
	binary.LittleEndian.PutUint32(out[0:], uint32(full[0]^high))
	binary.LittleEndian.PutUint32(out[4:], uint32(full[1]^low))
	binary.LittleEndian.PutUint32(out[8:], uint32(full[2]^high))
	binary.LittleEndian.PutUint32(out[12:], uint32(full[3]^low))
	return hex.EncodeToString(out[:])
}

// expectedQRY returns the right answer for a challenge under the negotiated version, or "" for
// an unknown product id.
func (s *Server) expectedQRY(ver int, chl, prodID string) string {
	if ver >= 11 {
		if key, ok := msnp11Keys[prodID]; ok {
			return qryMSNP11(chl, prodID, key, s.opts.ChallengePadAlways)
		}
		return ""
	}
	if key, ok := msnp10Keys[prodID]; ok {
		return qryBasic(chl, key)
	}
	return ""
}

// sendChallenge sends a fresh CHL to n. Callers hold s.mu.
func (s *Server) sendChallenge(n *nsSession) string {
	n.challenge = randomDigits(20)
	n.sendLine("CHL", "0", n.challenge)
	return n.challenge
}

// nsQRY checks the answer to the outstanding challenge: "QRY t" when right, "540 t" and a
// disconnect when wrong. Without an outstanding challenge QRY is ignored, as on Escargot.
func (s *Server) nsQRY(n *nsSession, cmd *msn.Command) bool {
	if n.challenge == "" {
		return true
	}
	t, prod := cmd.Args[0], cmd.Arg(1)
	chl := n.challenge
	n.challenge = ""
	ans := strings.ToLower(string(cmd.Payload))
	want := s.expectedQRY(n.ver, chl, prod)
	ok := want != "" && ans == want
	s.chl = append(s.chl, ChallengeResult{Handle: n.handle, Challenge: chl, ProductID: prod, Answer: ans, OK: ok, Time: time.Now()})
	if len(s.chl) > 1024 {
		s.chl = append(s.chl[:0], s.chl[len(s.chl)-512:]...)
	}
	if ok {
		n.sendLine("QRY", t)
		return true
	}
	n.sendLine("540", t)
	return false
}
