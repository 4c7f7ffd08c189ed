package simulations

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/identity"
	"github.com/jstp-peer/jstp-peer/mesh"
)

// inject builds the dispatch of job j, as attacker a can, and sends it
// to the target.
func (s *secRun) inject(ctx context.Context, a *secAttacker, j secJob) {
	inj := secInjection{kind: j.kind, path: j.path, attacker: a.index, sent: time.Now()}
	d, err := s.build(a, j, &inj)
	if err != nil {
		s.r.log.Error("cannot build an injection", "kind", j.kind, "err", err)
		inj.reason = "not built: " + err.Error()
		s.recordInjection(inj)
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.deadline)
	defer cancel()
	var msg string
	switch j.path {
	case pathDirect:
		d.Host = []dispatch.Host{{Name: s.target.ID().String()}}
		inj.code, msg, err = a.raw.request(rctx, d)
		if err != nil {
			s.r.log.Warn("raw injection not sent", "attacker", a.index, "err", err)
		}
	case pathGateway:
		d.Host = []dispatch.Host{{Name: s.gateways[j.gateway].ID().String()}, {Name: s.target.ID().String()}}
		ch, err := a.peer.Node.Request(rctx, d)
		if err != nil {
			s.r.log.Warn("injection refused by the attacker's own peer", "attacker", a.index, "err", err)
		} else {
			inj.code, msg = finalAnswer(ch)
		}
	}
	inj.reason = refusalReason(inj.code, msg)
	s.recordInjection(inj)
}

func (s *secRun) recordInjection(inj secInjection) {
	s.mu.Lock()
	s.injections = append(s.injections, inj)
	s.mu.Unlock()
}

// build makes the dispatch of job j: fresh ones name j.id as their
// ledger entry and claim client j.claim as author, or have it sign.
func (s *secRun) build(a *secAttacker, j secJob, inj *secInjection) (*dispatch.Dispatch, error) {
	honest := s.clients[j.claim].ID()
	fresh := func() *dispatch.Dispatch {
		d := dispatch.New(dispatch.POST, "ledger")
		d.Token = []any{uuid.NewString()}
		d.Body = bodyOf(j.id, 1)
		return d
	}
	inj.id = j.id
	variant := j.variant
	switch j.kind {
	case kindForged:
		d := fresh()
		if variant%2 == 0 {
			inj.variant = "signed with the attacker's key"
			if err := identity.Sign(s.attKeys[a.index], d); err != nil {
				return nil, err
			}
			var h identity.SignatureHeaderValue
			if err := json.Unmarshal(d.Extra.Value(identity.SignatureHeader), &h); err != nil {
				return nil, err
			}
			h.Author = honest.String()
			raw, err := json.Marshal(h)
			if err != nil {
				return nil, err
			}
			d.Extra.Set(identity.SignatureHeader, raw)
			return d, nil
		}
		inj.variant = "random signature"
		sig, nonce := make([]byte, 64), make([]byte, 12)
		_, _ = rand.Read(sig)
		_, _ = rand.Read(nonce)
		raw, err := json.Marshal(identity.SignatureHeaderValue{
			Alg: identity.SignatureAlgorithm, Author: honest.String(),
			Sig: base64.RawURLEncoding.EncodeToString(sig), Nonce: base64.RawURLEncoding.EncodeToString(nonce),
		})
		if err != nil {
			return nil, err
		}
		d.Extra = dispatch.Headers{{Name: identity.SignatureHeader, Value: raw}}
		return d, nil
	case kindTampered:
		d := fresh()
		if err := identity.Sign(s.keys[j.claim], d); err != nil {
			return nil, err
		}
		if variant%2 == 0 {
			inj.variant = "body changed"
			d.Body = bodyOf(j.id, 1_000_000)
		} else {
			inj.variant = "timestamp changed"
			d.Timestamp++
		}
		return d, nil
	case kindStale:
		d := fresh()
		past := identity.DefaultReplaySkew + time.Minute
		if variant%2 == 0 {
			inj.variant = "signed with a timestamp 3 min old"
			d.Timestamp = time.Now().Add(-past).UnixMilli()
		} else {
			inj.variant = "signed with a timestamp 3 min ahead"
			d.Timestamp = time.Now().Add(past).UnixMilli()
		}
		if err := identity.Sign(s.keys[j.claim], d); err != nil {
			return nil, err
		}
		return d, nil
	case kindReplayed, kindLate:
		inj.variant = "exact copy"
		if j.orig == nil || j.orig.raw == nil {
			return nil, errors.New("no original to replay")
		}
		inj.id, inj.allowed = j.orig.id, 1
		return dispatch.Decode(j.orig.raw)
	}
	return nil, fmt.Errorf("unknown kind %q", j.kind)
}

// refusals sums the 401s counted by each role's peers.
func (s *secRun) refusals(attackers []*SimPeer) secRefusals {
	count := func(ps []*SimPeer) uint64 {
		var n uint64
		for _, p := range ps {
			n += p.Node.Stats().Dropped["unauthorized"]
		}
		return n
	}
	return secRefusals{
		Target:    count([]*SimPeer{s.target}),
		Gateways:  count(s.gateways),
		Clients:   count(s.clients),
		Attackers: count(attackers),
	}
}

// rawLink is an attacker's own dispatch stream to a peer: the mesh's
// protocol spoken directly on a libp2p stream. The peer answers on the
// first dispatch stream it has with the attacker, so this must be the
// first one: the attacker's engine never sends the target anything.
type rawLink struct {
	st   network.Stream
	wmu  sync.Mutex
	fw   *mesh.FrameWriter
	pmu  sync.Mutex
	wait map[string]chan *dispatch.Dispatch
	done chan struct{}
}

func openRaw(ctx context.Context, from *SimPeer, to peer.ID) (*rawLink, error) {
	st, err := from.Host.LibP2P().NewStream(ctx, to, mesh.ProtocolID)
	if err != nil {
		return nil, fmt.Errorf("open a dispatch stream to %s: %w", to, err)
	}
	l := &rawLink{st: st, fw: mesh.NewFrameWriter(st), wait: map[string]chan *dispatch.Dispatch{}, done: make(chan struct{})}
	go l.read()
	return l, nil
}

// read hands every answer or exception to the request waiting for it.
func (l *rawLink) read() {
	defer close(l.done)
	fr := mesh.NewFrameReader(l.st, 0)
	for {
		d, frame, err := mesh.ReadDispatch(fr, dispatch.Decoder{})
		if frame == nil && err != nil {
			if errors.Is(err, dispatch.ErrTooLarge) {
				continue
			}
			return
		}
		if err != nil || d == nil {
			continue
		}
		txid := d.TransactionID()
		if code, tx, _, ok := d.AnswerInfo(); ok {
			if code < 200 {
				continue
			}
			txid = tx
		} else if d.Exception == nil {
			continue
		}
		l.pmu.Lock()
		ch := l.wait[txid]
		delete(l.wait, txid)
		l.pmu.Unlock()
		if ch != nil {
			ch <- d
		}
	}
}

// request writes d and waits for its final answer until ctx ends (code
// 0: none came).
func (l *rawLink) request(ctx context.Context, d *dispatch.Dispatch) (int, string, error) {
	txid := d.TransactionID()
	ch := make(chan *dispatch.Dispatch, 1)
	l.pmu.Lock()
	l.wait[txid] = ch
	l.pmu.Unlock()
	forget := func() {
		l.pmu.Lock()
		delete(l.wait, txid)
		l.pmu.Unlock()
	}
	l.wmu.Lock()
	err := l.fw.WriteDispatch(d)
	if err == nil {
		err = l.fw.Flush()
	}
	l.wmu.Unlock()
	if err != nil {
		forget()
		return 0, "", err
	}
	select {
	case a := <-ch:
		if a.Exception != nil {
			return a.Exception.Code, a.Exception.Message, nil
		}
		code, _, _, _ := a.AnswerInfo()
		return code, answerText(a.Body), nil
	case <-ctx.Done():
	case <-l.done:
	}
	forget()
	return 0, "", nil
}

func (l *rawLink) close() {
	_ = l.st.Reset()
	<-l.done
}
