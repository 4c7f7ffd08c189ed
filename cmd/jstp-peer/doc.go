// Command jstp-peer is the command-line face of a JSTP mesh peer: it runs
// a peer, sends and binds dispatches from the shell, and checks, matches
// and converts dispatches offline.
//
// Usage:
//
//	jstp-peer COMMAND [flags] [arguments]
//	jstp-peer help [COMMAND]
//
// The offline commands need no running peer:
//
//	check   validate one dispatch (JSON, URL or HTTP-like notation)
//	match   tell whether an endpoint pattern matches a dispatch
//	fmt     convert a dispatch between the notations
//	version print the version
//
// Exit status: 0 success (valid, matched, converted); 1 a negative answer:
// an invalid dispatch (check, fmt) or no match (match); 2 a usage error or
// input that cannot be read; 130 interrupted (Ctrl-C).
//
// Each command lives in its own file and is one entry of the commands
// table in main.go; its run function takes the standard streams as
// io.Reader/io.Writer, so tests call it in-process.
package main
