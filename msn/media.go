package msn

import (
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

	// friendlyRaw is the Friendly attribute as received (base64), so that XML and SHA1C
	// reproduce a peer's object byte for byte.
	friendlyRaw string
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

// OutgoingFile is a file the account sends with SendFile.
type OutgoingFile struct {
	Name     string
	Size     int64
	Data     io.Reader // read exactly Size bytes
	Progress func(sent int64)
}

// FileOffered is emitted when a contact offers a file. Name is the file name without any path
// and without control characters. SessionID is the switchboard session the offer came on.
type FileOffered struct {
	SessionID string
	From      string
	Name      string
	Size      int64
	Offer     *FileOffer
}

// WinkReceived is emitted when a contact sends a wink (datacast ID 2). Object names its data (a
// CAB archive), fetched with FetchObject; its Friendly is the wink's name. Object is the zero
// MSNObject when the wink's msnobj was invalid.
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
