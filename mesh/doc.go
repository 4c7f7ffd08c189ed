// Package mesh is the peer's libp2p side: it moves bytes and peers. It owns
// the host and its transports (TCP, QUIC, WebSocket), listen and announce
// addresses, NAT traversal (UPnP/NAT-PMP port mapping, AutoNAT, hole
// punching, circuit relays), discovery (bootstrap peers, mDNS on the LAN,
// the Kademlia DHT), gossipsub topics as bytes, the dispatch stream
// protocol and its framing, and the classic wire's connections (gateways
// that accept newline-delimited JSON over TCP and WebSocket, a dialer that
// reaches classic engines).
//
// The contract with the engine is small and defined here (link.go): every
// connection that carries dispatches is a Link — a Session with a peer, a
// classic Conn — and what a link reads goes, frame by frame, to the
// Ingress the link was attached to. mesh does not interpret dispatches
// beyond their framing: answers, subscriptions and the classic dialect are
// the engine's (package node), and choosing where a dispatch goes is
// package routing's.
//
// Constructors build a part; Start (Streams, Gateway) lets traffic in, so
// whoever composes a peer wires every part before anything arrives. Each
// part owns what it starts: Close stops its goroutines and is safe to call
// more than once.
//
// The DHT runs under the protocol prefix /jstp (protocol /jstp/kad/1.0.0),
// not IPFS's /ipfs: a jstp-peer mesh is its own network, so its routing
// tables hold only jstp peers and its provider records only jstp names.
package mesh
