package msn

import (
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"strings"
)

// Product id / key pairs for the CHL/QRY challenge (docs/protocol.md §3.11).
const (
	// ProductIDMSNP11 and ProductKeyMSNP11 are MSN Messenger 7.0's pair, recommended for MSNP11.
	ProductIDMSNP11  = "PROD0090YUAUV{2B"
	ProductKeyMSNP11 = "YMM8C_H7KCQ2S_KL"
	// ProductIDMSNP10 and ProductKeyMSNP10 are the pair of the MSNP6–10 basic MD5 method.
	ProductIDMSNP10  = "msmsgs@msnmsgr.com"
	ProductKeyMSNP10 = "Q1P7W2E4J9R8U3S5"
)

// ChallengeMD5 answers a challenge with the MSNP10-and-older method: the lower-case hex MD5 of
// challenge + productKey.
func ChallengeMD5(challenge, productKey string) string {
	sum := md5.Sum([]byte(challenge + productKey))
	return hex.EncodeToString(sum[:])
}

// ChallengeMSNP11 answers a challenge with the MSNP11 algorithm (docs/protocol.md §3.11). padAlways
// selects the variant that appends 8 - len%8 '0' characters even when challenge + productID is
// already a multiple of 8 bytes long; the default (false) pads only when needed. The two agree for
// the usual 20-digit challenges. It never fails: any string is a valid challenge.
func ChallengeMSNP11(challenge, productID, productKey string, padAlways bool) string {
	const mask = 0x7FFFFFFF
	h := md5.Sum([]byte(challenge + productKey))
	var full, k [4]uint64
	for i := range 4 {
		full[i] = uint64(binary.LittleEndian.Uint32(h[i*4:]))
		k[i] = full[i] & mask
	}

	s := challenge + productID
	if pad := 8 - len(s)%8; pad != 8 || padAlways {
		s += strings.Repeat("0", pad)
	}
	n := len(s) / 4
	w := make([]uint64, n)
	for i := range n {
		w[i] = uint64(binary.LittleEndian.Uint32([]byte(s[i*4:]))) & mask
	}

	var high, low uint64
	for i := 0; i+1 < n; i += 2 {
		t := (w[i] * 0x0E79A9C1) % mask
		t = (k[0]*(t+high) + k[1]) % mask
		high = (k[2]*((w[i+1]+t)%mask) + k[3]) % mask
		low = low + high + t
	}
	high = (high + k[1]) % mask
	low = (low + k[3]) % mask

	var out [16]byte
	binary.LittleEndian.PutUint32(out[0:], uint32(full[0]^high))
	binary.LittleEndian.PutUint32(out[4:], uint32(full[1]^low))
	binary.LittleEndian.PutUint32(out[8:], uint32(full[2]^high))
	binary.LittleEndian.PutUint32(out[12:], uint32(full[3]^low))
	return hex.EncodeToString(out[:])
}

// handleCHL answers a challenge on a separate goroutine (the reply wait must not block the
// reader).
func (c *Client) handleCHL(cmd *Command) {
	chl := cmd.Arg(1)
	if chl == "" {
		return
	}
	c.mu.Lock()
	ns, proto := c.ns, c.protocol
	if c.state == stateClosed || ns == nil {
		c.mu.Unlock()
		return
	}
	// Added under c.mu while not closed, so it never races with Close's Wait.
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		id, answer := ProductIDMSNP11, ""
		if proto == "MSNP10" {
			id, answer = ProductIDMSNP10, ChallengeMD5(chl, ProductKeyMSNP10)
		} else {
			answer = ChallengeMSNP11(chl, ProductIDMSNP11, ProductKeyMSNP11, c.cfg.ChallengePadAlways)
		}
		if _, err := ns.call(c.ctx, c.cfg.RequestTimeout, "QRY", []string{id}, []byte(answer)); err != nil {
			c.log.Warn().Err(err).Msg("Challenge answer not accepted")
		}
	}()
}
