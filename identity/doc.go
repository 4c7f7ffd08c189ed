// Package identity owns a peer's key pair: creating it, keeping it in the
// data directory, and (in later files) signing and verifying dispatches,
// sealing them to a recipient and opening them, and the trust rules.
//
// The key is the libp2p key, so the peer id that the mesh announces, the id
// that signs dispatches and the id that sealed dispatches are addressed to
// are one and the same. It never leaves the data directory, where it lives
// in a file only its owner can read (mode 0600, directory 0700).
package identity
