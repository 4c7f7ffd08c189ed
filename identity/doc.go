// Package identity owns a peer's keys and what they vouch for: creating
// and keeping the keys in the data directory, signing and verifying
// dispatches, rejecting replays, and sealing dispatches to a recipient
// and opening them.
//
// # Keys
//
// The identity key is the libp2p Ed25519 key, so the peer id that the mesh
// announces, the id that signs dispatches and the id that sealed
// dispatches are addressed to are one and the same (LoadOrCreate, Rotate).
// It may be encrypted at rest under a passphrase (WithPassphrase,
// SetPassphrase). The sealing key is a separate HPKE key pair, X25519 or
// the hybrid ML-KEM-768 + X25519 (LoadOrCreateSealingKey), published in a
// key record the identity key signs (NewKeyRecord, OpenKeyRecord). Both
// live in the data directory in files only their owner can read (mode
// 0600, directory 0700): identity.key and sealing.key.
//
// # Signed dispatches
//
// Sign adds a "signature" header (format at SignatureHeaderValue) over the
// RFC 8785 canonical form of the dispatch without the headers gateways
// rewrite (host, hops, via), so a signature survives any number of hops
// and re-serialisations. Verify returns the author, whose public key is
// inside its peer id. ReplayGuard then rejects a dispatch seen before or
// stamped too far from now.
//
// # Sealed dispatches
//
// Seal moves everything but protocol, timestamp, host, hops and via into
// a "sealed" header (format at SealedHeaderValue), HPKE-encrypted to the
// recipient's sealing key; Open restores it. Sign first, then seal.
//
// A receiving engine applies them in this order: Open (when sealed),
// Verify, ReplayGuard.Check, then trust rules.
//
// # Errors and codes
//
// Dispatch-level errors wrap dispatch sentinels, so dispatch.Code maps
// them: ErrUnsigned, ErrBadSignature, ErrReplay and ErrBadKeyRecord to
// 401, ErrBadSeal to 400. Key-file errors (ErrPassphraseRequired,
// ErrWrongPassphrase, ErrNotEncrypted) are local and have no code.
package identity
