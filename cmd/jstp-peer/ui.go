package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jstp-peer/jstp-peer/internal/webui"
	"github.com/jstp-peer/jstp-peer/node"
)

// loopbackDefault makes an address given as a port alone (":8080")
// listen on loopback: operator endpoints are not for the network unless
// asked for by name.
func loopbackDefault(addr string) string {
	addr = strings.TrimSpace(addr)
	if host, port, err := net.SplitHostPort(addr); err == nil && host == "" {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

// uiServer is the web view of `up --ui`.
type uiServer struct {
	ln      net.Listener
	cfg     webui.Config
	origins []string
	srv     *http.Server
	done    chan struct{}
	once    sync.Once
}

func listenUI(addr string, onCrit *hook, log *slog.Logger) (*uiServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	u := &uiServer{ln: ln, cfg: webui.Config{Addr: ln.Addr().String(), Logger: log}}
	if onCrit != nil {
		u.cfg.AddReplica = func(ctx context.Context, report json.RawMessage) error { return onCrit.run(ctx, report) }
	}
	if u.origins, err = u.cfg.Origins(); err != nil {
		ln.Close()
		return nil, err
	}
	return u, nil
}

// serve starts serving the view of p.
func (u *uiServer) serve(p *node.Peer) error {
	h, err := webui.New(p, u.cfg)
	if err != nil {
		return err
	}
	u.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	u.done = make(chan struct{})
	go func() {
		defer close(u.done)
		if err := u.srv.Serve(u.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			u.cfg.Logger.Warn("web view stopped", "err", err)
		}
	}()
	return nil
}

func (u *uiServer) url() string { return "http://" + u.ln.Addr().String() + "/" }

// Close stops the view and waits for it.
func (u *uiServer) Close() {
	u.once.Do(func() {
		if u.srv == nil {
			u.ln.Close()
			return
		}
		u.srv.Close()
		<-u.done
	})
}
