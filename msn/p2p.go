package msn

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MSNP2P v1 framing: a 48-byte little-endian binary header, up to P2PMaxChunk data bytes and a
// 4-byte big-endian footer (the AppID), inside a switchboard message of type
// application/x-msnmsgrp2p sent in mode D.

// P2P framing constants.
const (
	P2PHeaderSize = 48
	P2PFooterSize = 4
	// P2PMaxChunk is the most data bytes in one packet; with the MIME header and the
	// header/footer it keeps a packet under the switchboard's 1664-byte payload limit.
	P2PMaxChunk = 1202
)

// P2P header flags.
const (
	P2PFlagNone      = 0x0
	P2PFlagNak       = 0x1
	P2PFlagAck       = 0x2
	P2PFlagWaiting   = 0x4
	P2PFlagError     = 0x8
	P2PFlagFile      = 0x10
	P2PFlagData      = 0x20
	P2PFlagClose     = 0x40
	P2PFlagTLPError  = 0x80
	P2PFlagDirect    = 0x100
	P2PFlagWLM       = 0x1000000
	P2PFlagWLMData   = 0x1000020
	P2PFlagFileData  = 0x1000030
	p2pFlagFileData0 = 0x30
)

// P2P footers (AppIDs).
const (
	P2PAppSLP    = 0
	P2PAppObject = 1
	P2PAppFile   = 2
)

// P2PHeader is the 48-byte binary header of a P2P packet.
type P2PHeader struct {
	SessionID   uint32
	Identifier  uint32
	Offset      uint64
	TotalSize   uint64
	MessageSize uint32
	Flags       uint32
	AckID       uint32
	AckUID      uint32
	AckSize     uint64
}

// P2PPacket is one decoded P2P packet: its header, data and footer.
type P2PPacket struct {
	Header P2PHeader
	Data   []byte
	Footer uint32
}

// ErrP2PMalformed marks a P2P packet that cannot be decoded or breaks the framing rules.
var ErrP2PMalformed = errors.New("msn: malformed p2p packet")

// MarshalP2PHeader appends h's 48 bytes to b.
func MarshalP2PHeader(b []byte, h P2PHeader) []byte {
	le := binary.LittleEndian
	b = le.AppendUint32(b, h.SessionID)
	b = le.AppendUint32(b, h.Identifier)
	b = le.AppendUint64(b, h.Offset)
	b = le.AppendUint64(b, h.TotalSize)
	b = le.AppendUint32(b, h.MessageSize)
	b = le.AppendUint32(b, h.Flags)
	b = le.AppendUint32(b, h.AckID)
	b = le.AppendUint32(b, h.AckUID)
	return le.AppendUint64(b, h.AckSize)
}

// ParseP2PBinary decodes the binary part of a P2P message (header, data, footer). It checks
// that MessageSize matches the data present, that it is at most P2PMaxChunk (a little more is
// tolerated for peers that cut differently, never more than the switchboard allows) and that
// the chunk lies within TotalSize.
func ParseP2PBinary(b []byte) (P2PPacket, error) {
	var p P2PPacket
	if len(b) < P2PHeaderSize+P2PFooterSize {
		return p, fmt.Errorf("%w: %d bytes, under header and footer", ErrP2PMalformed, len(b))
	}
	le := binary.LittleEndian
	h := &p.Header
	h.SessionID = le.Uint32(b[0:])
	h.Identifier = le.Uint32(b[4:])
	h.Offset = le.Uint64(b[8:])
	h.TotalSize = le.Uint64(b[16:])
	h.MessageSize = le.Uint32(b[24:])
	h.Flags = le.Uint32(b[28:])
	h.AckID = le.Uint32(b[32:])
	h.AckUID = le.Uint32(b[36:])
	h.AckSize = le.Uint64(b[40:])
	data := b[P2PHeaderSize : len(b)-P2PFooterSize]
	p.Footer = binary.BigEndian.Uint32(b[len(b)-P2PFooterSize:])
	if uint64(h.MessageSize) != uint64(len(data)) {
		return p, fmt.Errorf("%w: MessageSize %d, %d data bytes", ErrP2PMalformed, h.MessageSize, len(data))
	}
	if h.Offset > h.TotalSize || uint64(h.MessageSize) > h.TotalSize-h.Offset {
		return p, fmt.Errorf("%w: chunk %d+%d beyond TotalSize %d", ErrP2PMalformed, h.Offset, h.MessageSize, h.TotalSize)
	}
	p.Data = data
	return p, nil
}

const p2pMIMEPrefix = "MIME-Version: 1.0\r\nContent-Type: application/x-msnmsgrp2p\r\nP2P-Dest: "

// NewP2PMessage builds the switchboard payload of one packet for dest: the MIME block, the
// header, data and the big-endian footer. MessageSize is set from data.
func NewP2PMessage(dest string, h P2PHeader, data []byte, footer uint32) []byte {
	h.MessageSize = uint32(len(data))
	b := make([]byte, 0, len(p2pMIMEPrefix)+len(dest)+4+P2PHeaderSize+len(data)+P2PFooterSize)
	b = append(b, p2pMIMEPrefix...)
	b = append(b, dest...)
	b = append(b, "\r\n\r\n"...)
	b = MarshalP2PHeader(b, h)
	b = append(b, data...)
	return binary.BigEndian.AppendUint32(b, footer)
}

// p2pNeedsAck reports whether a complete message with these flags is acknowledged.
func p2pNeedsAck(flags uint32) bool {
	switch flags {
	case P2PFlagNone, P2PFlagWLM, P2PFlagData, P2PFlagWLMData, P2PFlagFileData, p2pFlagFileData0:
		return true
	}
	return false
}

// p2pFailure reports whether flags end the session they belong to.
func p2pFailure(flags uint32) bool {
	switch flags {
	case P2PFlagNak, P2PFlagError, P2PFlagClose, P2PFlagTLPError:
		return true
	}
	return false
}
