package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// natsSubject is where the responder listens.
const natsSubject = "bench.echo"

// natsTimeout bounds one NATS request; loopback answers in microseconds.
const natsTimeout = 10 * time.Second

// runNATSServer runs an embedded nats-server on a random loopback port.
// It gets a process of its own, as a deployed NATS server would, so the
// comparison with the mesh (two peer processes) is process for process.
func runNATSServer(ctx context.Context) error {
	s, err := server.NewServer(&server.Options{
		Host:   "127.0.0.1",
		Port:   server.RANDOM_PORT,
		NoLog:  true,
		NoSigs: true,
	})
	if err != nil {
		return err
	}
	s.Start()
	defer s.Shutdown()
	if !s.ReadyForConnections(readyTimeout) {
		return fmt.Errorf("nats-server not ready after %v", readyTimeout)
	}
	return serveCommands(ctx, ready{URL: s.ClientURL()}, nil)
}

// runNATSResponder answers every request on natsSubject with its payload.
func runNATSResponder(ctx context.Context, rf roleFlags) error {
	nc, err := nats.Connect(rf.url, nats.Name("jstp-bench-responder"))
	if err != nil {
		return err
	}
	defer nc.Close()
	_, err = nc.Subscribe(natsSubject, func(m *nats.Msg) {
		if err := m.Respond(m.Data); err != nil {
			// stdout carries replies to the parent; logs go to stderr.
			fmt.Fprintf(os.Stderr, "respond: %v\n", err)
		}
	})
	if err != nil {
		return err
	}
	// The subscription is known to the server once Flush returns, so the
	// first request after READY finds it.
	if err := nc.Flush(); err != nil {
		return err
	}
	return serveCommands(ctx, ready{}, nil)
}

// natsClient is the requester, in the parent process.
type natsClient struct {
	nc      *nats.Conn
	payload []byte
}

func dialNATS(url string, payload []byte) (*natsClient, error) {
	nc, err := nats.Connect(url, nats.Name("jstp-bench-requester"))
	if err != nil {
		return nil, err
	}
	return &natsClient{nc: nc, payload: payload}, nil
}

// request sends the payload and waits for the responder's copy.
func (c *natsClient) request(int) (string, error) {
	m, err := c.nc.Request(natsSubject, c.payload, natsTimeout)
	if err != nil {
		return "", err
	}
	if !bytes.Equal(m.Data, c.payload) {
		return "wrong-payload", nil
	}
	return "ok", nil
}

func (c *natsClient) close() { c.nc.Close() }
