package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/jstp-peer/jstp-peer/mesh"
	"github.com/jstp-peer/jstp-peer/routing"
)

// validate checks the values whose form is known, naming where a bad one
// came from.
func (s *settings) validate() error {
	if _, err := mesh.ParseDHTMode(s.str[keyDHT]); err != nil {
		return fmt.Errorf("%s: dht %q: want auto, server or client", s.describe(keyDHT), s.str[keyDHT])
	}
	if _, err := parseLogLevel(s.str[keyLogLevel]); err != nil {
		return fmt.Errorf("%s: %w", s.describe(keyLogLevel), err)
	}
	if _, err := parseLogFormat(s.str[keyLogFormat]); err != nil {
		return fmt.Errorf("%s: %w", s.describe(keyLogFormat), err)
	}
	// Addresses are checked here, where the message can name the flag,
	// variable or file that gave them, rather than by the peer as it
	// starts (a raw libp2p error, after the data directory is locked).
	for _, key := range []string{keyListen, keyAnnounce, keyBootstrap} {
		for _, a := range s.list[key] {
			if err := checkMultiaddr(a, key == keyBootstrap); err != nil {
				return fmt.Errorf("%s: %s %q: %w", s.describe(key), key, a, err)
			}
		}
	}
	for _, name := range s.list[keyProvide] {
		if err := routing.ValidName(name); err != nil {
			return fmt.Errorf("%s: provide %q: a service name is 1 to %d characters without white space, \"/\" or \":\"", s.describe(keyProvide), name, routing.MaxNameLen)
		}
	}
	if v := strings.TrimSpace(s.str[keyLinkRate]); v != "" {
		if n, err := strconv.Atoi(v); err != nil || n < 0 {
			return fmt.Errorf("%s: link-rate %q: want a number of dispatches per second, 0 for no bound", s.describe(keyLinkRate), v)
		}
	}
	if _, err := routing.Policy(s.str[keyBalance], nil); err != nil {
		return fmt.Errorf("%s: balance %q: want one of %s", s.describe(keyBalance), s.str[keyBalance], strings.Join(routing.PolicyNames, ", "))
	}
	for _, key := range []string{keyGatewayTCP, keyGatewayWS, keyVia, keyMetrics, keyUI} {
		if a := strings.TrimSpace(s.str[key]); a != "" {
			if _, port, err := net.SplitHostPort(a); err != nil || !validPort(port) {
				return fmt.Errorf("%s: %s %q: want HOST:PORT, as in 127.0.0.1:33333 (port 0: a free one)", s.describe(key), key, a)
			}
		}
	}
	return nil
}

// checkMultiaddr checks a multiaddr setting; a bootstrap address must
// name its peer (/p2p/<peer id>), since a peer is joined by identity.
func checkMultiaddr(a string, needPeer bool) error {
	m, err := multiaddr.NewMultiaddr(strings.TrimSpace(a))
	if err != nil {
		return fmt.Errorf("not a multiaddr (%s); write it as /ip4/192.0.2.1/tcp/4033", multiaddrProblem(err))
	}
	if needPeer {
		if _, err := peer.AddrInfoFromP2pAddr(m); err != nil {
			return errors.New("does not end in /p2p/<peer id>; `jstp-peer id` and `jstp-peer up` print whole addresses")
		}
	}
	return nil
}

// multiaddrProblem is what go-multiaddr says is wrong, without the parts
// that repeat the address and the deeper parser's words:
// `invalid value "1.2.3" for protocol ip4`, `unknown protocol ipx`.
func multiaddrProblem(err error) string {
	msg := err.Error()
	if _, rest, ok := strings.Cut(msg, `": `); ok && strings.HasPrefix(msg, "failed to parse multiaddr ") {
		msg = rest
	}
	if strings.HasPrefix(msg, "invalid value ") {
		if i := strings.Index(msg, ": "); i > 0 {
			msg = msg[:i]
		}
	}
	return msg
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 0 && n <= 65535
}

// describe names where a setting's value came from, for error messages:
// "--dht", "JSTP_PEER_DHT", "config file F".
func (s *settings) describe(key string) string {
	src := s.src[key]
	switch {
	case src == srcFlag:
		return "--" + key
	case strings.HasPrefix(src, "env "):
		return strings.TrimPrefix(src, "env ")
	case strings.HasPrefix(src, "file "):
		return "config file " + strings.TrimPrefix(src, "file ")
	}
	return key
}

// Log formats.
const (
	logText = "text"
	logJSON = "json"
)

func parseLogFormat(s string) (string, error) {
	switch f := strings.ToLower(strings.TrimSpace(s)); f {
	case "", logText:
		return logText, nil
	case logJSON:
		return logJSON, nil
	}
	return "", fmt.Errorf("log format %q: want text or json", s)
}

func parseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
}
