package msn

import (
	"context"
	"errors"
	"io"
)

// Media over MSN P2P (MSNP2P v1 + MSNSLP on the switchboard): display pictures, custom emoticons,
// winks and files. Data always travels inside switchboard "MSG D" messages; direct-connection
// offers are declined.

// Object types of an MSNObject (its Type attribute).
const (
	ObjectEmoticon       = 2
	ObjectDisplayPicture = 3
	ObjectBackground     = 5
	ObjectWink           = 8
	ObjectVoiceClip      = 11
)

// MSNObject names a piece of content (display picture, emoticon, wink) by its creator and
// hashes. It is fetched from Creator with FetchObject.
type MSNObject struct {
	Creator  string
	Size     int64
	Type     int
	Location string
	Friendly string // decoded from its base64 UTF-16LE form
	SHA1D    string // base64 SHA-1 of the data
	SHA1C    string // base64 SHA-1 of the other attributes
	Stamp    string // kept as given, for winks
}

// Errors of the media calls and events.
var (
	// ErrTransferDeclined: the peer declined a file or an object request (603).
	ErrTransferDeclined = errors.New("msn: transfer declined")
	// ErrTransferCanceled: the peer or the local side cancelled a transfer under way (BYE).
	ErrTransferCanceled = errors.New("msn: transfer canceled")
	// ErrTransferTooLarge: the data is larger than the configured cap.
	ErrTransferTooLarge = errors.New("msn: transfer too large")
	// ErrObjectMismatch: the data received does not match its msnobj's Size or SHA1D.
	ErrObjectMismatch = errors.New("msn: object data does not match its msnobj")
	// ErrTransferStalled: no progress within the transfer's idle timeout.
	ErrTransferStalled = errors.New("msn: transfer stalled")
)

// ParseMSNObject parses the decoded XML of an msnobj ("<msnobj Creator=… />").
func ParseMSNObject(xml string) (MSNObject, error) {
	return MSNObject{}, errors.New("msn: ParseMSNObject: not implemented")
}

// NewMSNObject returns the msnobj of data created by creator, with Size, SHA1D and SHA1C
// computed.
func NewMSNObject(creator string, typ int, location, friendly string, data []byte) MSNObject {
	return MSNObject{}
}

// XML returns the msnobj as official clients write it (attribute order Creator, Size, Type,
// Location, Friendly, SHA1D, SHA1C).
func (o MSNObject) XML() string { return "" }

// FetchObject fetches obj's data from obj.Creator over a switchboard (opened when needed),
// verifying its Size and SHA1D. It blocks until done, ctx ends, or the peer declines
// (ErrTransferDeclined).
func (c *Client) FetchObject(ctx context.Context, obj MSNObject) ([]byte, error) {
	return nil, errors.New("msn: FetchObject: not implemented")
}

// SetDisplayPicture publishes data (PNG) as the account's display picture, served to contacts
// who request it, and announces its msnobj in CHG so contacts see it. nil removes the picture.
func (c *Client) SetDisplayPicture(ctx context.Context, data []byte) error {
	return errors.New("msn: SetDisplayPicture: not implemented")
}

// PublishObject makes data servable to contacts under the returned msnobj (for custom
// emoticons sent by the account).
func (c *Client) PublishObject(typ int, friendly string, data []byte) MSNObject {
	return MSNObject{}
}

// OutgoingFile is a file the account sends with SendFile.
type OutgoingFile struct {
	Name     string
	Size     int64
	Data     io.Reader // read exactly Size bytes
	Progress func(sent int64)
}

// SendFile offers f to contact and, once accepted, sends it over a one-to-one switchboard. It
// blocks until the contact acknowledged the data, declined (ErrTransferDeclined), cancelled
// (ErrTransferCanceled), ctx ended (the transfer is then cancelled), or it failed.
func (c *Client) SendFile(ctx context.Context, contact string, f OutgoingFile) error {
	return errors.New("msn: SendFile: not implemented")
}

// FileOffer is a file a contact offers. Exactly one of Accept or Decline should be called;
// an offer neither accepted nor declined is declined after the client's offer timeout.
type FileOffer struct{}

// Accept accepts the offer and writes the file to w as it arrives. It blocks until the whole
// file was received, the peer cancelled (ErrTransferCanceled), it stalled, ctx ended (the
// transfer is then cancelled), or the data went beyond the offered size.
func (o *FileOffer) Accept(ctx context.Context, w io.Writer, progress func(received int64)) error {
	return errors.New("msn: Accept: not implemented")
}

// Decline declines the offer (603).
func (o *FileOffer) Decline() error { return errors.New("msn: Decline: not implemented") }

// FileOffered is emitted when a contact offers a file. Name is the file name without any path
// and without control characters.
type FileOffered struct {
	SessionID string
	From      string
	Name      string
	Size      int64
	Offer     *FileOffer
}

// WinkReceived is emitted when a contact sends a wink (datacast ID 2). Object names its data (a
// CAB archive), fetched with FetchObject.
type WinkReceived struct {
	SessionID string
	From      string
	Object    MSNObject
}

// Emoticon is a custom emoticon used in a text message: Shortcut in the text stands for Object.
type Emoticon struct {
	Shortcut string
	Object   MSNObject
}

func (*FileOffered) isEvent()  {}
func (*WinkReceived) isEvent() {}
