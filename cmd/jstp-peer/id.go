package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/jstp-peer/jstp-peer/identity"
)

const idExamples = `  jstp-peer id
  peer id: 12D3KooWGRUVh8Mrz8kDBQt5X2bAqxeT1pHjuvkB4W2ZXBnAfXQM
  addresses:
    /ip4/127.0.0.1/tcp/4033/p2p/12D3KooWGRUVh8Mrz8kDBQt5X2bAqxeT1pHjuvkB4W2ZXBnAfXQM
    /ip4/192.168.1.20/tcp/4033/p2p/12D3KooWGRUVh8Mrz8kDBQt5X2bAqxeT1pHjuvkB4W2ZXBnAfXQM
    ...

  jstp-peer id --data-dir /tmp/b --json
  {"id":"12D3KooW...","addrs":["/ip4/127.0.0.1/tcp/4033/p2p/12D3KooW...",...]}
`

func runID(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("id", "jstp-peer id [flags]",
		`Print the peer id of the data directory's identity key (creating the key
when there is none, as "jstp-peer up" would) and the addresses to hand
out to other peers (as --bootstrap): the --announce addresses when set,
else the configured listen addresses with 0.0.0.0 and :: expanded to this
machine's interface addresses, each with /p2p/<peer id> appended. A
running peer prints the addresses it really listens on (free ports
resolved).

--new makes a new identity key first, for a peer that is not running: the
old key is kept as identity.key.old-<time> in the data directory. The
peer id changes with it, so what others knew of the old id ends: their
bootstrap addresses, bindings and sealed sessions with it, names it
provided (the new id announces them again when it starts). Do it when the
key may have leaked.

Exit status: 0 printed; 1 the key cannot be read or created (or, with
--new, the peer is running); 2 a usage or configuration error.`,
		idExamples)
	s := newSettings()
	s.register(fs, keyDataDir, keyListen, keyAnnounce, keyConfig)
	asJSON := fs.Bool("json", false, `print {"id": ..., "addrs": [...]}`)
	rotate := fs.Bool("new", false, "make a new identity key (a new peer id) first; the old one is kept aside")
	pos, code, ok := parseArgs(fs, s, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return usageError(fs, stderr, "want no arguments, got %q", pos)
	}
	dataDir, err := s.DataDir()
	if err != nil {
		return fail(stderr, "id", exitUsage, "%v", err)
	}
	var key crypto.PrivKey
	if *rotate {
		unlock, err := lockDataDir(dataDir)
		if err != nil {
			return fail(stderr, "id", exitFail, "--new: %v (stop the peer first)", err)
		}
		key, err = identity.Rotate(dataDir)
		unlock()
		if err != nil {
			return fail(stderr, "id", exitFail, "--new: %v", err)
		}
	} else if key, err = identity.LoadOrCreate(dataDir); err != nil {
		return fail(stderr, "id", exitFail, "%v", err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return fail(stderr, "id", exitFail, "peer id: %v", err)
	}
	// What to hand out: the announced addresses when set, else the listen
	// addresses with 0.0.0.0 and :: expanded to this machine's interface
	// addresses, as a running peer reports them.
	key0 := keyAnnounce
	listen := s.List(keyAnnounce)
	if len(listen) == 0 {
		key0, listen = keyListen, s.List(keyListen)
	}
	addrs, err := p2pAddrs(listen, id, key0 == keyListen)
	if err != nil {
		return fail(stderr, "id", exitUsage, "%s: %v", s.describe(key0), err)
	}
	if *asJSON {
		b, err := json.Marshal(struct {
			ID    string   `json:"id"`
			Addrs []string `json:"addrs"`
		}{id.String(), addrs})
		if err != nil {
			return fail(stderr, "id", exitFail, "%v", err)
		}
		fmt.Fprintf(stdout, "%s\n", b)
		return exitOK
	}
	fmt.Fprintf(stdout, "peer id: %s\naddresses:\n", id)
	for _, a := range addrs {
		fmt.Fprintf(stdout, "  %s\n", a)
	}
	return exitOK
}

// p2pAddrs checks each multiaddr, expands unspecified IPs (0.0.0.0, ::)
// to the interface addresses when expand is set, and appends /p2p/<id>.
func p2pAddrs(list []string, id peer.ID, expand bool) ([]string, error) {
	var ms []multiaddr.Multiaddr
	for _, a := range list {
		m, err := multiaddr.NewMultiaddr(strings.TrimSpace(a))
		if err != nil {
			return nil, fmt.Errorf("address %q: %w", a, err)
		}
		ms = append(ms, m)
	}
	if expand {
		// Without interface addresses (a sandbox) the unspecified form is
		// still better than nothing.
		if resolved, err := manet.ResolveUnspecifiedAddresses(ms, nil); err == nil && len(resolved) > 0 {
			ms = resolved
		}
	}
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		if _, err := m.ValueForProtocol(multiaddr.P_P2P); err == nil {
			out = append(out, m.String())
			continue
		}
		out = append(out, m.String()+"/p2p/"+id.String())
	}
	return out, nil
}
