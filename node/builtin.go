package node

import (
	"context"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// PeerInfo is the body of GET ["peer"].
type PeerInfo struct {
	ID       string `json:"id"`
	Version  string `json:"version"`
	Protocol string `json:"protocol"`
	Started  int64  `json:"started"`  // Unix milliseconds
	UptimeMS int64  `json:"uptimeMs"` // milliseconds
	// Stats counts what the engine did, and what it dropped by reason.
	Stats Stats `json:"stats"`
}

// SubscriptionInfo is one element of the body of GET ["subscriptions"].
type SubscriptionInfo struct {
	Method   string   `json:"method"`
	Resource []string `json:"resource"`
	Owner    string   `json:"owner"`
	Queued   int      `json:"queued"`
	Handled  uint64   `json:"handled"`
	Dropped  uint64   `json:"dropped"`
}

// Info returns what GET ["peer"] answers.
func (n *Node) Info() PeerInfo {
	now := n.cfg.now()
	return PeerInfo{
		ID:       n.cfg.id,
		Version:  Version,
		Protocol: "JSTP/" + dispatch.Version,
		Started:  n.started.UnixMilli(),
		UptimeMS: now.Sub(n.started).Milliseconds(),
		Stats:    n.Stats(),
	}
}

// Subscriptions returns what GET ["subscriptions"] answers.
func (n *Node) Subscriptions() []SubscriptionInfo {
	var out []SubscriptionInfo
	n.subs.each(func(s *subscription) {
		out = append(out, SubscriptionInfo{
			Method:   s.ep.Endpoint.Method,
			Resource: s.ep.Endpoint.Resource,
			Owner:    s.owner.ID(),
			Queued:   s.queued(),
			Handled:  s.handled.Load(),
			Dropped:  s.dropped.Load(),
		})
	})
	return out
}

// Serve registers a built-in resource: a GET handler on a literal
// resource, answered from memory (so it runs Inline). Transports use it
// for their own resources (["peers"]).
func (n *Node) Serve(resource []string, f func(ctx context.Context) (any, error)) error {
	_, err := n.Handle(dispatch.Endpoint{Method: dispatch.GET, Resource: resource}, func(ctx context.Context, _ *Incoming) (any, error) {
		return f(ctx)
	}, Inline(), QueueLen(BuiltinQueueLen))
	return err
}

func (n *Node) registerBuiltins() error {
	if err := n.Serve([]string{"peer"}, func(context.Context) (any, error) { return n.Info(), nil }); err != nil {
		return err
	}
	if n.sealing != nil {
		if err := n.Serve([]string{"identity"}, func(context.Context) (any, error) { return n.sealing.info, nil }); err != nil {
			return err
		}
	}
	return n.Serve([]string{"subscriptions"}, func(context.Context) (any, error) { return n.Subscriptions(), nil })
}
