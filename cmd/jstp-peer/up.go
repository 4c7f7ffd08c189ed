package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jstp-peer/jstp-peer/identity"
	"github.com/jstp-peer/jstp-peer/internal/gctune"
	"github.com/jstp-peer/jstp-peer/internal/metrics"
	"github.com/jstp-peer/jstp-peer/mesh"
	"github.com/jstp-peer/jstp-peer/node"
)

const upExamples = `  jstp-peer up                                   the first peer of a machine
  jstp-peer up --data-dir /tmp/b                 a second one (free ports are picked)
  jstp-peer up --bootstrap /ip4/192.0.2.10/tcp/4033/p2p/12D3KooW...
  jstp-peer up --provide pizza.com.ar --dht server
  jstp-peer up --listen /ip4/127.0.0.1/tcp/0 --gateway-tcp 127.0.0.1:0 --gateway-ws '' --no-mdns

  Standard output says who and where the peer is:
    peer id: 12D3KooWGRUVh8Mrz8kDBQt5X2bAqxeT1pHjuvkB4W2ZXBnAfXQM
    data dir: /home/me/.config/jstp-peer
    listening:
      /ip4/127.0.0.1/tcp/4033/p2p/12D3KooWGRUVh8Mrz8kDBQt5X2bAqxeT1pHjuvkB4W2ZXBnAfXQM
      ...
    gateways: tcp 127.0.0.1:33333, ws ws://127.0.0.1:33334/
`

// closeTimeout bounds the shutdown: a peer that does not stop in this
// time is abandoned (the process exits) rather than left hanging after
// Ctrl-C.
const closeTimeout = 15 * time.Second

func runUp(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	// The peer process's own setting, not the library's: applications
	// that embed node choose theirs.
	gctune.Apply()
	return up(ctx, args, stdout, stderr, nil)
}

// up runs the peer until ctx ends. ready, when not nil, is called with
// the running peer once its addresses are printed (tests use it instead
// of parsing standard output).
func up(ctx context.Context, args []string, stdout, stderr io.Writer, ready func(*node.Peer)) int {
	fs := newFlagSet("up", "jstp-peer up [flags]",
		`Run a peer of the mesh until Ctrl-C.

On first run the peer creates its identity key in the data directory; its
peer id derives from it. It listens for other peers (TCP and QUIC, port 4033;
free ports when 4033 is taken, so a second peer on the machine needs only
another --data-dir), finds peers on the local network with mDNS, joins the
mesh through --bootstrap peers, and serves GET /peer, /peers,
/subscriptions, /saturation, any method on /echo/..., and the operator
resources that connect, ping, resolve, provide and unprovide use (to this
machine only). Local programs and the other commands reach it through its
classic gateways: TCP (newline-delimited JSON) on 127.0.0.1:33333 and
WebSocket on 127.0.0.1:33334, or free ports when those are taken.

Logs go to standard error: key=value lines, or JSON lines with
--log-format json; dispatches in them are written in the HTTP-like
notation.

Settings come from flags, then JSTP_PEER_<FLAG> environment variables
(JSTP_PEER_LISTEN=a,b for repeatable flags), then the config file (see
"jstp-peer config"), then the defaults.

Exit status: 0 stopped by Ctrl-C; 1 the peer could not start (the reason
on standard error); 2 a usage or configuration error.`,
		upExamples)
	s := newSettings()
	s.register(fs, keyDataDir, keyListen, keyAnnounce, keyBootstrap, keyProvide, keyGatewayTCP, keyGatewayWS,
		keyNoMDNS, keyNoForward, keyOnCritical, keyBalance, keyMetrics, keyUI, keyOrigin, keyAccess, keyLinkRate, keyDHT, keyLogLevel,
		keyLogFormat, keyConfig)
	pos, code, ok := parseArgs(fs, s, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return usageError(fs, stderr, "want no arguments, got %q", pos)
	}
	level, _ := parseLogLevel(s.String(keyLogLevel))       // validated by resolve
	logFormat, _ := parseLogFormat(s.String(keyLogFormat)) // likewise
	log := newLogger(stderr, level, logFormat)
	dhtMode, _ := mesh.ParseDHTMode(s.String(keyDHT))

	dataDir, err := s.DataDir()
	if err != nil {
		return fail(stderr, "up", exitUsage, "%v", err)
	}
	unlock, err := lockDataDir(dataDir)
	if err != nil {
		return fail(stderr, "up", exitFail, "%v", err)
	}
	defer unlock()
	key, err := identity.LoadOrCreate(dataDir)
	if err != nil {
		return fail(stderr, "up", exitFail, "%v", err)
	}

	listen := s.List(keyListen)
	if busy, taken := mesh.BusyListenAddr(listen); taken {
		if s.Explicit(keyListen) {
			return fail(stderr, "up", exitFail, "%v", mesh.ListenBusyError(busy))
		}
		listen = mesh.EphemeralListenAddrs()
		log.Warn("port in use (another peer on this machine?); listening on free ports instead", "busy", busy)
	}
	gateways := map[string]string{}
	for _, k := range []string{keyGatewayTCP, keyGatewayWS} {
		addr := strings.TrimSpace(s.String(k))
		if addr != "" && mesh.TCPInUse(addr) {
			if s.Explicit(k) {
				return fail(stderr, "up", exitFail, "--%s %s is in use (another peer on this machine?): pass --%s 127.0.0.1:0 for a free port, or --%s '' for none", k, addr, k, k)
			}
			log.Warn("gateway port in use (another peer on this machine?); using a free port instead", "gateway", k, "busy", addr)
			addr = mesh.EphemeralLike(addr)
		}
		gateways[k] = addr
	}
	boot := s.List(keyBootstrap)
	linkRate, _ := strconv.Atoi(strings.TrimSpace(s.String(keyLinkRate))) // validated
	cfg := node.PeerConfig{
		Mesh: mesh.Config{
			Key:           key,
			ListenAddrs:   listen,
			AnnounceAddrs: s.List(keyAnnounce),
			Bootstrap:     boot,
			MDNS:          !s.Bool(keyNoMDNS),
			DHTMode:       dhtMode,
			// Loopback only: NAT traversal and relays would cost time and
			// log noise for nothing.
			Loopback: mesh.AllLoopback(listen) && (len(boot) == 0 || mesh.AllLoopback(boot)),
		},
		Provide:        s.List(keyProvide),
		DataDir:        dataDir,
		NoForward:      s.Bool(keyNoForward),
		GatewayTCP:     gateways[keyGatewayTCP],
		GatewayWS:      gateways[keyGatewayWS],
		GatewayOrigins: s.List(keyOrigin),
		Balance:        s.String(keyBalance),
		LinkRate:       linkRate,
		Logger:         log,
	}
	var accessInfo os.FileInfo
	accessFile := accessPath(s, dataDir)
	if accessFile != "" {
		if cfg.Access, accessInfo, err = loadAccess(accessFile); err != nil {
			return fail(stderr, "up", exitUsage, "%v", err)
		}
	}
	var onCrit *hook
	if command := strings.TrimSpace(s.String(keyOnCritical)); command != "" {
		onCrit = &hook{command: command, stderr: stderr, log: log}
		// Bound before the first report: a peer already critical when it
		// starts raises its event then.
		cfg.Setup = func(p *node.Peer) error { return onCrit.onCritical(p) }
	}
	// The web view listens before the peer starts: the gateway must admit
	// its page's origin, which names the port actually listened on.
	var ui *uiServer
	if addr := loopbackDefault(s.String(keyUI)); addr != "" {
		if ui, err = listenUI(addr, onCrit, log); err != nil {
			return fail(stderr, "up", exitFail, "--ui %s: %v", addr, err)
		}
		defer ui.Close()
		cfg.GatewayOrigins = append(cfg.GatewayOrigins, ui.origins...)
		cfg.Recent = 100 // the view's list of recent dispatches
	}
	p, err := node.Start(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return fail(stderr, "up", exitInterrupted, "interrupted while starting")
		}
		hint := ""
		if mesh.IsAddrInUse(err) {
			hint = " (another peer on this machine? pass --listen /ip4/0.0.0.0/tcp/0, or other ports and another --data-dir)"
		}
		return fail(stderr, "up", exitFail, "cannot start the peer: %v%s", err, hint)
	}
	if ui != nil {
		if err := ui.serve(p); err != nil {
			p.Close()
			return fail(stderr, "up", exitFail, "--ui: %v (the web view needs the WebSocket gateway, --gateway-ws)", err)
		}
	}
	var ms *metrics.Server
	if addr := loopbackDefault(s.String(keyMetrics)); addr != "" {
		if ms, err = metrics.Listen(addr, p, metrics.WithLogger(log)); err != nil {
			p.Close()
			return fail(stderr, "up", exitFail, "--metrics %s: %v", addr, err)
		}
		defer ms.Close()
	}
	if accessFile != "" {
		w := watchAccess(accessFile, p.Node, accessInfo, log)
		defer w.Close()
	}
	printUp(stdout, p, dataDir, cfg)
	if ui != nil {
		fmt.Fprintf(stdout, "web view: %s\n", ui.url())
	}
	if ms != nil {
		fmt.Fprintf(stdout, "metrics: %s\n", ms.URL())
	}
	if ready != nil {
		ready(p)
	}
	log.Info("peer running; Ctrl-C stops it", "peer", p.Host.ID())

	<-ctx.Done()
	log.Info("stopping")
	// Operator endpoints first: nothing reads a peer that is closing.
	if ui != nil {
		ui.Close()
	}
	if ms != nil {
		ms.Close()
	}
	// Close waits for every part of the peer; it is given a bound so a
	// stuck part cannot keep the process alive after Ctrl-C. On timeout
	// the goroutine is left behind, and the process exits just after.
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			log.Warn("peer stopped with errors", "err", err)
		}
		return exitOK
	case <-time.After(closeTimeout):
		return fail(stderr, "up", exitFail, "the peer did not stop within %v", closeTimeout)
	}
}

// printUp prints who and where the peer is. The "gateways:" line is
// what scripts (and the tests) read the gateway addresses from.
func printUp(w io.Writer, p *node.Peer, dataDir string, cfg node.PeerConfig) {
	fmt.Fprintf(w, "peer id: %s\n", p.Host.ID())
	fmt.Fprintf(w, "data dir: %s\n", dataDir)
	fmt.Fprintln(w, "listening:")
	for _, a := range p.Host.Addrs() {
		fmt.Fprintf(w, "  %s\n", a)
	}
	fmt.Fprintf(w, "gateways: %s\n", gatewaysText(p, cfg))
	if len(cfg.Provide) > 0 {
		fmt.Fprintf(w, "provides: %s\n", strings.Join(cfg.Provide, ", "))
	}
}

// gatewaysText describes the gateways that listen: "tcp ADDR, ws
// ws://ADDR/". StartPeer starts the TCP one first.
func gatewaysText(p *node.Peer, cfg node.PeerConfig) string {
	var parts []string
	i := 0
	if cfg.GatewayTCP != "" && i < len(p.Gateways) {
		parts = append(parts, "tcp "+p.Gateways[i].Addr().String())
		i++
	}
	if cfg.GatewayWS != "" && i < len(p.Gateways) {
		parts = append(parts, "ws ws://"+p.Gateways[i].Addr().String()+"/")
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
