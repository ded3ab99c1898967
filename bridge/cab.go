package bridge

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
)

// A minimal reader of Microsoft cabinet files (MS-CAB), enough for the CAB of an MSN wink:
// uncompressed and MSZIP folders, one cabinet (no spanning). Every count, offset and size comes
// from remote data and is checked against the archive and a cap on the output.

var errBadCAB = errors.New("invalid cabinet file")

// cabFile is one file in a cabinet.
type cabFile struct {
	name   string
	size   uint32
	offset uint32 // in its folder's uncompressed data
	folder uint16
}

type cabFolder struct {
	dataStart uint32
	blocks    uint16
	compress  uint16
}

type cabinet struct {
	data       []byte
	folders    []cabFolder
	files      []cabFile
	dataExtra  int // reserved bytes in each data block header
	maxExtract int
}

const (
	cabCompressNone  = 0
	cabCompressMSZIP = 1
	cabMaxBlock      = 32768 // the most uncompressed bytes in one data block
)

// parseCAB reads the directory of a cabinet held in data. maxExtract caps what one extract
// may produce.
func parseCAB(data []byte, maxExtract int) (*cabinet, error) {
	if len(data) < 36 || string(data[:4]) != "MSCF" {
		return nil, errBadCAB
	}
	le := binary.LittleEndian
	coffFiles := le.Uint32(data[16:])
	nFolders, nFiles, flags := int(le.Uint16(data[26:])), int(le.Uint16(data[28:])), le.Uint16(data[30:])
	c := &cabinet{data: data, maxExtract: maxExtract}
	pos := 36
	folderExtra := 0
	if flags&0x0004 != 0 { // reserve fields present
		if len(data) < pos+4 {
			return nil, errBadCAB
		}
		headerExtra := int(le.Uint16(data[pos:]))
		folderExtra, c.dataExtra = int(data[pos+2]), int(data[pos+3])
		pos += 4 + headerExtra
	}
	for _, f := range []uint16{0x0001, 0x0002} { // previous / next cabinet: two names each
		if flags&f == 0 {
			continue
		}
		for range 2 {
			i := bytes.IndexByte(data[min(pos, len(data)):], 0)
			if i < 0 {
				return nil, errBadCAB
			}
			pos += i + 1
		}
	}
	for range nFolders {
		if pos+8+folderExtra > len(data) {
			return nil, errBadCAB
		}
		c.folders = append(c.folders, cabFolder{dataStart: le.Uint32(data[pos:]), blocks: le.Uint16(data[pos+4:]), compress: le.Uint16(data[pos+6:])})
		pos += 8 + folderExtra
	}
	pos = int(coffFiles)
	if coffFiles > uint32(len(data)) {
		return nil, errBadCAB
	}
	for range nFiles {
		if pos+16 > len(data) {
			return nil, errBadCAB
		}
		f := cabFile{size: le.Uint32(data[pos:]), offset: le.Uint32(data[pos+4:]), folder: le.Uint16(data[pos+8:])}
		pos += 16
		i := bytes.IndexByte(data[pos:], 0)
		if i < 0 || i > 255 {
			return nil, errBadCAB
		}
		f.name = string(data[pos : pos+i])
		pos += i + 1
		c.files = append(c.files, f)
	}
	return c, nil
}

// extract returns the content of the file named name (case-insensitive).
func (c *cabinet) extract(name string) ([]byte, error) {
	for _, f := range c.files {
		if strings.EqualFold(f.name, name) {
			return c.extractFile(f)
		}
	}
	return nil, fmt.Errorf("%w: no file %q", errBadCAB, name)
}

func (c *cabinet) extractFile(f cabFile) ([]byte, error) {
	if int(f.folder) >= len(c.folders) {
		return nil, errBadCAB
	}
	end := uint64(f.offset) + uint64(f.size)
	if end > uint64(c.maxExtract) {
		return nil, fmt.Errorf("%w: file too large", errBadCAB)
	}
	folder := c.folders[f.folder]
	le := binary.LittleEndian
	pos := int(folder.dataStart)
	var out []byte // the folder's data so far
	var window []byte
	for range folder.blocks {
		if uint64(len(out)) >= end {
			break
		}
		if pos < 0 || pos+8+c.dataExtra > len(c.data) {
			return nil, errBadCAB
		}
		cbData, cbUncomp := int(le.Uint16(c.data[pos+4:])), int(le.Uint16(c.data[pos+6:]))
		pos += 8 + c.dataExtra
		if pos+cbData > len(c.data) || cbUncomp > cabMaxBlock {
			return nil, errBadCAB
		}
		block := c.data[pos : pos+cbData]
		pos += cbData
		switch folder.compress & 0x000f {
		case cabCompressNone:
			if cbData != cbUncomp {
				return nil, errBadCAB
			}
			out = append(out, block...)
		case cabCompressMSZIP:
			if len(block) < 2 || block[0] != 'C' || block[1] != 'K' {
				return nil, errBadCAB
			}
			// Each block is a deflate stream whose dictionary is the previous block.
			r := flate.NewReaderDict(bytes.NewReader(block[2:]), window)
			buf := make([]byte, cbUncomp)
			n, err := io.ReadFull(r, buf)
			if err != nil || n != cbUncomp {
				return nil, fmt.Errorf("%w: bad MSZIP block", errBadCAB)
			}
			out = append(out, buf...)
			window = buf
		default:
			return nil, fmt.Errorf("%w: unsupported compression %d", errBadCAB, folder.compress&0x000f)
		}
	}
	if uint64(len(out)) < end {
		return nil, fmt.Errorf("%w: truncated folder", errBadCAB)
	}
	return out[f.offset:end], nil
}

// maxThumbnailTries bounds the files winkThumbnail extracts looking for an image.
const maxThumbnailTries = 4

// winkThumbnail returns the thumbnail image of a wink's cabinet: the file its content.xml
// names as "thumbnail", else the first image in it.
func winkThumbnail(cab []byte, maxSize int) (data []byte, mime string, err error) {
	c, err := parseCAB(cab, maxSize)
	if err != nil {
		return nil, "", err
	}
	var candidates []string
	if content, err := c.extract("content.xml"); err == nil {
		if name := thumbnailName(content); name != "" {
			candidates = append(candidates, name)
		}
	}
	for _, f := range c.files {
		switch strings.ToLower(path.Ext(f.name)) {
		case ".png", ".jpg", ".jpeg", ".gif":
			candidates = append(candidates, f.name)
		}
	}
	// Each try may inflate up to maxSize: a cabinet of many images costs a few tries, not one
	// per image.
	for _, name := range candidates[:min(len(candidates), maxThumbnailTries)] {
		data, err := c.extract(name)
		if err != nil {
			continue
		}
		if mime := http.DetectContentType(data); strings.HasPrefix(mime, "image/") {
			return data, mime, nil
		}
	}
	return nil, "", fmt.Errorf("%w: no thumbnail", errBadCAB)
}

// thumbnailName returns the file of the item of type "thumbnail" in a wink's content.xml.
func thumbnailName(content []byte) string {
	d := xml.NewDecoder(bytes.NewReader(content))
	d.Strict = false
	for range 1000 {
		tok, err := d.Token()
		if err != nil {
			return ""
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		var typ, file string
		for _, at := range se.Attr {
			switch strings.ToLower(at.Name.Local) {
			case "type":
				typ = at.Value
			case "file":
				file = at.Value
			}
		}
		if strings.EqualFold(typ, "thumbnail") && file != "" {
			return file
		}
	}
	return ""
}
