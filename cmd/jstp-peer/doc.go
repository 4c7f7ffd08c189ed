// Command jstp-peer is the command-line face of a JSTP mesh peer: it runs
// a peer, sends and binds dispatches from the shell, and checks, matches
// and converts dispatches offline.
//
// Usage:
//
//	jstp-peer COMMAND [flags] [arguments]
//	jstp-peer help [COMMAND]
//
// The network commands:
//
//	up         run a peer until Ctrl-C (identity in the data directory,
//	           classic gateways on 127.0.0.1:33333 and :33334)
//	send       send a dispatch through the local peer's TCP gateway and
//	           print its answers (or only their bodies, or nothing)
//	bind       subscribe to an endpoint and print what triggers it,
//	           reconnecting when the local peer restarts
//	peers      list the local peer's connections
//	saturation show the mesh's load, live like top
//	connect    make the local peer connect to another peer
//	ping       libp2p ping from the local peer to another
//	resolve    list the providers of a service name, with their load
//	provide    provide service names at run time (unprovide: stop)
//	id         print the peer id and listen addresses of a data directory
//	config     write (init) or print (show) the config file
//
// The operator commands (connect, ping, resolve, provide, unprovide) send
// the local peer dispatches to resources it serves to its own machine
// only (node/operator.go).
//
// The offline commands need no running peer:
//
//	check      validate one dispatch (JSON, URL or HTTP-like notation)
//	match      tell whether an endpoint pattern matches a dispatch
//	fmt        convert a dispatch between the notations
//	completion print a bash, zsh or fish completion script
//	version    print the version
//
// Settings of the network commands come from flags, then JSTP_PEER_<FLAG>
// environment variables, then the config file (JSON; keys starting with
// "_" are comments), then the defaults; see settings.go and docs/cli.md.
//
// Exit status: 0 success (answers all 2xx, valid, matched, converted,
// stopped by Ctrl-C); 1 a negative outcome: a non-2xx answer or none, no
// peer to talk to, an invalid dispatch (check, fmt) or no match (match);
// 2 a usage error or input that cannot be read; 130 interrupted.
//
// Each command lives in its own file and is one entry of the commands
// table in main.go; its run function takes the standard streams as
// io.Reader/io.Writer, so tests call it in-process. What each command
// prints, errors included, is kept in testdata/golden.
package main
