package msntest

import (
	"encoding/binary"
	"fmt"
)

// WinkCAB returns a small wink as MSN clients package one: an uncompressed Microsoft cabinet
// (MS-CAB) holding content.xml, which names thumbnail.png (thumbnail, a PNG) as the wink's
// thumbnail, and animation.swf (animation, any bytes) as its animation. Publish it with
// BotPublishObject(handle, msn.ObjectWink, name, cab).
func WinkCAB(name string, thumbnail, animation []byte) []byte {
	content := fmt.Sprintf(`<?xml version="1.0"?>`+"\r\n"+
		`<package xmlns="http://messenger.msn.com/messengercontent/1.0" ver="1" type="wink">`+
		`<item type="thumbnail" mimetype="image/png" file="thumbnail.png"/>`+
		`<item type="animation" mimetype="application/x-shockwave-flash" file="animation.swf" name=%q/>`+
		`</package>`, name)
	return makeCAB([]cabEntry{
		{"content.xml", []byte(content)},
		{"thumbnail.png", thumbnail},
		{"animation.swf", animation},
	})
}

type cabEntry struct {
	name string
	data []byte
}

// cabMaxBlock is the most bytes one CFDATA block holds.
const cabMaxBlock = 32768

// makeCAB builds a one-folder, uncompressed cabinet of files.
func makeCAB(files []cabEntry) []byte {
	var folder []byte
	for _, f := range files {
		folder = append(folder, f.data...)
	}
	le := binary.LittleEndian
	var filesPart []byte
	var off uint32
	for _, f := range files {
		rec := make([]byte, 16) // CFFILE: size, offset, folder 0, date, time, attributes
		le.PutUint32(rec[0:], uint32(len(f.data)))
		le.PutUint32(rec[4:], off)
		off += uint32(len(f.data))
		filesPart = append(filesPart, rec...)
		filesPart = append(filesPart, f.name...)
		filesPart = append(filesPart, 0)
	}
	nBlocks := max(1, (len(folder)+cabMaxBlock-1)/cabMaxBlock)
	const headerSize, folderSize = 36, 8
	coffFiles := headerSize + folderSize
	out := make([]byte, headerSize+folderSize)
	copy(out, "MSCF")
	le.PutUint32(out[16:], uint32(coffFiles))
	out[24], out[25] = 3, 1 // version 1.3
	le.PutUint16(out[26:], 1)
	le.PutUint16(out[28:], uint16(len(files)))
	le.PutUint32(out[36:], uint32(coffFiles+len(filesPart))) // CFFOLDER: first data block
	le.PutUint16(out[40:], uint16(nBlocks))                  // its blocks; compression 0: none
	out = append(out, filesPart...)
	for i := range nBlocks {
		chunk := folder[min(i*cabMaxBlock, len(folder)):min((i+1)*cabMaxBlock, len(folder))]
		h := make([]byte, 8) // CFDATA: checksum 0 (none), compressed and uncompressed sizes
		le.PutUint16(h[4:], uint16(len(chunk)))
		le.PutUint16(h[6:], uint16(len(chunk)))
		out = append(out, h...)
		out = append(out, chunk...)
	}
	le.PutUint32(out[8:], uint32(len(out)))
	return out
}
