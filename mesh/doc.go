// Package mesh is the peer's libp2p side: the host and its transports
// (TCP, QUIC, WebSocket), listen and announce addresses, NAT traversal
// (UPnP/NAT-PMP port mapping, AutoNAT, hole punching, circuit relays),
// discovery (bootstrap peers, mDNS on the LAN, the Kademlia DHT), gossipsub,
// the dispatch stream protocol and its framing, and the gateways to classic
// JSTP engines (newline-delimited JSON over TCP, WebSocket).
//
// New builds a Host from a Config. The Host owns everything it starts:
// Close stops its goroutines and closes mDNS, the DHT and the libp2p host,
// in that order, and is safe to call more than once.
//
// The DHT runs under the protocol prefix /jstp (protocol /jstp/kad/1.0.0),
// not IPFS's /ipfs: a jstp-peer mesh is its own network, so its routing
// tables hold only jstp peers and its provider records only jstp names.
//
// mesh moves bytes and peers; it does not interpret dispatches beyond their
// framing. Choosing where a dispatch goes is package routing's job, and the
// dispatch cycle is package node's.
package mesh
