package identity

import (
	"errors"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// Sentinel errors. The ones about dispatches wrap a dispatch sentinel, so
// dispatch.Code maps them to a JSTP exception code with no table of its
// own here: that mapping stays in one place, and errors.Is tells the cause
// apart. The code of each is in its doc comment.
var (
	// ErrUnsigned (401): the dispatch carries no "signature" header where
	// one is required.
	ErrUnsigned = &sentinel{"dispatch is not signed", dispatch.ErrUnauthorized}

	// ErrBadSignature (401): the "signature" header is malformed, names an
	// algorithm other than ed25519 or an author whose peer id does not
	// embed an Ed25519 public key, or the signature does not verify: the
	// dispatch was changed after signing, or was never signed by the
	// author it names.
	ErrBadSignature = &sentinel{"bad signature", dispatch.ErrUnauthorized}

	// ErrReplay (401): a signed dispatch was seen before within the replay
	// window, or its timestamp is further from now than the allowed skew.
	//
	// 401 rather than 409: freshness is part of authenticating a
	// dispatch (a replay is a valid signature on the wrong occasion), the
	// protocol of record already lists 401 for trust failures, and
	// classic engines know no 409. It also tells an attacker no more than
	// a bad signature would.
	ErrReplay = &sentinel{"replayed or stale dispatch", dispatch.ErrUnauthorized}

	// ErrBadSeal (400): a "sealed" header is malformed, names a KEM the
	// recipient's sealing key does not use, or does not open: it was
	// sealed to another peer or to another sealing key, the ciphertext was
	// changed, or it was moved to a dispatch with another protocol or
	// timestamp.
	//
	// 400 rather than 401: HPKE in base mode authenticates no sender, so a
	// failure says nothing about who sent the dispatch, only that its
	// content cannot be read here, like any malformed required header.
	// Authorship is the signature's job (ErrBadSignature, 401), checked
	// after opening.
	ErrBadSeal = &sentinel{"bad sealed dispatch", dispatch.ErrBadDispatch}

	// ErrBadKeyRecord (401): a sealing key record is too large, malformed,
	// not signed by the peer it is expected from, or of another record
	// type. Sealing to an unauthenticated key would hand the dispatch to
	// whoever forged the record.
	ErrBadKeyRecord = &sentinel{"bad sealing key record", dispatch.ErrUnauthorized}

	// ErrPassphraseRequired: the identity key file is encrypted and no
	// passphrase was given (see WithPassphrase). Not a dispatch error.
	ErrPassphraseRequired = errors.New("identity: key file is encrypted; a passphrase is required")

	// ErrWrongPassphrase: the passphrase does not decrypt the identity key
	// file (or the file was altered). Not a dispatch error.
	ErrWrongPassphrase = errors.New("identity: wrong passphrase for the key file (or the file was altered)")

	// ErrNotEncrypted: a passphrase was given but the identity key file is
	// stored in clear; SetPassphrase encrypts it. Not a dispatch error.
	ErrNotEncrypted = errors.New("identity: key file is not encrypted; encrypt it with SetPassphrase")
)

// sentinel is an identity error that is also one of dispatch's: errors.Is
// matches it by identity, and through Unwrap its code's sentinel, which is
// what dispatch.Code looks for.
type sentinel struct {
	msg  string
	code error
}

func (e *sentinel) Error() string { return e.msg }
func (e *sentinel) Unwrap() error { return e.code }
