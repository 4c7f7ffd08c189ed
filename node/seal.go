package node

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/identity"
	"github.com/jstp-peer/jstp-peer/routing"
)

// Sealed dispatches (docs/security.md). The emitter's own peer seals a
// request to its final recipient; gateways route it by its readable host
// chain and token and never read it; the recipient opens it, checks its
// signature and seals every answer back to the emitter's peer, which
// opens it before passing it to the emitter. Answers show gateways their
// status code and transaction id, which routing needs, never their body.

// SealHeader asks the emitter's peer to seal a dispatch ("seal": true).
// Only the application and this machine's gateway clients may ask: a
// peer that gets the request from elsewhere would only be sealing what it
// has already read.
const SealHeader = "seal"

// IdentityInfo is the body of GET ["identity"]: the peer's sealing key
// record (libp2p signed envelope, unpadded base64url), which anyone may
// check against the peer id.
type IdentityInfo struct {
	Peer   string `json:"peer"`
	KEM    uint16 `json:"kem"`
	Record string `json:"record"`
}

// keyRecordTTL is how long a peer's sealing key record is used before it
// is fetched again: a rotated key is picked up within it.
const keyRecordTTL = 10 * time.Minute

// sealing is the engine's sealing state: its own key and record, and the
// records of the peers it sealed to or opened from.
type sealing struct {
	key    *identity.SealingKey
	self   peer.ID
	record []byte // the signed envelope
	info   IdentityInfo

	mu      sync.Mutex
	records map[peer.ID]cachedRecord
	out     map[peer.ID]*outSession      // the sessions this peer made, by recipient
	in      map[string]*identity.Session // the sessions others made with it, by id
}

// outSession is a session this peer seals to a recipient with, and
// whether the recipient has shown it has it.
type outSession struct {
	s         *identity.Session
	confirmed bool
}

// maxSessions bounds the sessions others may make with a peer; beyond,
// the oldest go (their emitters then hand over new ones).
const maxSessions = 4096

type cachedRecord struct {
	rec     *identity.KeyRecord
	raw     string // the envelope as it came (base64url), to skip checking it again
	fetched time.Time
}

// maxCachedRecords bounds the record cache; it is cleared when full.
const maxCachedRecords = 4096

// WithSealing gives the engine its sealing key and the record that
// publishes it (identity.NewKeyRecord with the peer's identity key), so
// it can seal dispatches for its emitters and open those sealed to it.
// The engine must also sign (WithIdentity): a sealed dispatch is always
// signed, so its recipient knows whom to seal the answers to.
func WithSealing(key *identity.SealingKey, record []byte) Option {
	return func(c *config) { c.sealKey, c.sealRecord = key, record }
}

func newSealing(cfg config) (*sealing, error) {
	if cfg.sealKey == nil {
		return nil, nil
	}
	if cfg.key == nil {
		return nil, errors.New("node: sealing needs the identity key (WithIdentity) to sign what it seals")
	}
	self, err := peer.IDFromPrivateKey(cfg.key)
	if err != nil {
		return nil, fmt.Errorf("node: sealing: %w", err)
	}
	if _, err := identity.OpenKeyRecord(cfg.sealRecord, self); err != nil {
		return nil, fmt.Errorf("node: sealing key record: %w", err)
	}
	return &sealing{
		key:     cfg.sealKey,
		self:    self,
		record:  cfg.sealRecord,
		info:    IdentityInfo{Peer: self.String(), KEM: cfg.sealKey.KEM(), Record: base64.RawURLEncoding.EncodeToString(cfg.sealRecord)},
		records: map[peer.ID]cachedRecord{},
		out:     map[peer.ID]*outSession{},
		in:      map[string]*identity.Session{},
	}, nil
}

// wantsSeal reports whether d asks to be sealed, and takes the request
// off it.
func wantsSeal(d *dispatch.Dispatch) bool {
	raw, ok := d.Extra.Get(SealHeader)
	if !ok {
		return false
	}
	d.Extra.Delete(SealHeader)
	return string(raw) == "true"
}

// recipientOf says to whom a dispatch being passed on to next is sealed:
// the last element of what is left of its host chain, or next itself
// when next is the last hop (a name resolved here leads to the replica
// chosen).
func recipientOf(d *dispatch.Dispatch, next *linkOrigin) (peer.ID, error) {
	if len(d.Host) == 0 {
		if next.peer != "" {
			return next.peer, nil
		}
		return peer.Decode(next.l.ID())
	}
	last := d.Host[len(d.Host)-1]
	t, err := routing.Classify(last)
	if err != nil || t.Kind != routing.Peer {
		return "", dispatch.Errorf(dispatch.ErrBadDispatch, "a sealed dispatch must end its host chain with its recipient's peer id, not %s", last)
	}
	return t.Peer.ID, nil
}

// sealRequest seals d, about to go to next, for its final recipient; the
// caller has recorded its transaction (l) and will open the answers.
//
// The first dispatches to a recipient are sealed with its published key
// (HPKE) and signed inside, and hand it a session; once an answer has
// come back in the session, the recipient has it, and dispatches are
// sealed in it alone: no key agreement and no signature per dispatch.
func (n *Node) sealRequest(ctx context.Context, d *dispatch.Dispatch, next *linkOrigin, l *ledger) error {
	s := n.sealing
	if s == nil {
		return dispatch.Errorf(dispatch.ErrBadDispatch, "this peer has no sealing key: it cannot seal")
	}
	if d.Kind() != dispatch.Regular {
		return dispatch.Errorf(dispatch.ErrBadDispatch, "only regular dispatches are sealed, not %s", d.Kind())
	}
	to, err := recipientOf(d, next)
	if err != nil {
		return err
	}
	txid := d.TransactionID()
	host := d.Host
	sess, confirmed, err := s.sessionTo(to)
	if err != nil {
		return dispatch.Errorf(dispatch.ErrInternal, "%w", err)
	}
	if confirmed {
		err = identity.SealSession(sess, identity.ToRecipient, d)
	} else {
		var rec *identity.KeyRecord
		if rec, err = n.keyRecordOf(ctx, to); err != nil {
			return err
		}
		d.Extra.Set(identity.SessionKeyHeader, jsonString(sess.Secret()))
		if err = n.sign(d, to.String()); err != nil {
			return err
		}
		err = identity.Seal(rec, to, d)
	}
	if err != nil {
		return dispatch.Errorf(dispatch.ErrBadDispatch, "%w", err)
	}
	d.Host = host
	if txid != "" {
		// Readable, so that gateways keep the transaction's route; a
		// random id, it tells them nothing.
		d.Token = []any{txid}
	}
	if l != nil {
		l.sealedTo, l.session = to, sess
	}
	return nil
}

// openRequest opens a sealed dispatch addressed to this peer: in a
// session it knows, or with its sealing key, signed inside by an author
// that may hand it a session. Answers go back sealed in that session.
func (n *Node) openRequest(d *dispatch.Dispatch, rt *replyTo) error {
	s := n.sealing
	if s == nil {
		return dispatch.Errorf(dispatch.ErrBadDispatch, "this peer has no sealing key: it cannot open sealed dispatches")
	}
	if raw, ok := d.Extra.Get(identity.SessionHeader); ok {
		h, err := identity.ParseSessionHeader(raw)
		if err != nil {
			n.stats.rejected.Add(1)
			return err
		}
		sess := s.sessionFrom(h.SID)
		if sess == nil {
			n.stats.rejected.Add(1)
			return dispatch.Errorf(dispatch.ErrBadDispatch, "%w: unknown sealing session (expired here?): seal with the key again", identity.ErrBadSeal)
		}
		if err := identity.OpenSession(sess, identity.ToRecipient, h, d); err != nil {
			n.stats.rejected.Add(1)
			return err
		}
		if err := n.replay.CheckSealed(h.SID, h.Nonce, d.Timestamp); err != nil {
			n.stats.unauthorized.Add(1)
			return err
		}
		rt.author, rt.session = sess.Peer.String(), sess
		return nil
	}
	if err := identity.Open(s.key, s.self, d); err != nil {
		n.stats.rejected.Add(1)
		return err
	}
	author, signedFor, err := n.verify(d)
	if err == nil && author == "" {
		err = fmt.Errorf("%w: a sealed dispatch must be signed inside", identity.ErrUnsigned)
		n.stats.unauthorized.Add(1)
	}
	if err != nil {
		return err
	}
	raw, ok := d.Extra.Get(identity.SessionKeyHeader)
	if !ok {
		return dispatch.Errorf(dispatch.ErrBadDispatch, "a sealed dispatch must hand its recipient a session (%q)", identity.SessionKeyHeader)
	}
	d.Extra.Delete(identity.SessionKeyHeader)
	// The signature covered the session key, which must not reach
	// handlers: without it the signature no longer verifies, so it goes
	// too. Incoming.Author says who signed.
	d.Extra.Delete(identity.SignatureHeader)
	var secret string
	if err := json.Unmarshal(raw, &secret); err != nil {
		return dispatch.Errorf(dispatch.ErrBadDispatch, "%w: %q must be a string", identity.ErrBadSeal, identity.SessionKeyHeader)
	}
	id, _ := peer.Decode(author)
	sess, err := s.acceptSession(id, secret)
	if err != nil {
		return err
	}
	rt.author, rt.signedFor, rt.session = author, signedFor, sess
	return nil
}

// sealAnswer seals an answer written here in the session of the sealed
// dispatch it answers. Provisional answers stay readable: they carry
// only triggering ids.
func (n *Node) sealAnswer(rt replyTo, a *dispatch.Dispatch) error {
	code, _, _, ok := a.AnswerInfo()
	if !ok || (code >= 100 && code < 200) {
		return nil
	}
	method, res, token := a.Method, a.Resource, a.Token
	if err := identity.SealSession(rt.session, identity.ToEmitter, a); err != nil {
		return err
	}
	a.Method, a.Resource, a.Token = method, res, token
	return nil
}

// openAnswer opens an answer to a dispatch this peer sealed: it must open
// in the dispatch's session, which proves it comes from the recipient.
func (n *Node) openAnswer(l *ledger, a *dispatch.Dispatch) *dispatch.Dispatch {
	code, txid, trig, _ := a.AnswerInfo()
	raw, ok := a.Extra.Get(identity.SessionHeader)
	if !ok {
		if code == 400 {
			// Most likely the recipient lost the session (it restarted,
			// or expired it): the next dispatch hands it a new one.
			n.sealing.forget(l.sealedTo, l.session)
		}
		if code >= 300 || code < 200 {
			// Provisional answers, and what gateways answer for what
			// they could not deliver (404, 503, 504): readable, with
			// nothing to hide.
			return a
		}
		n.stats.unauthorized.Add(1)
		return dispatch.NewAnswer(502, txid, trig, jsonString("the answer to a sealed dispatch came unsealed"))
	}
	c := *a
	h, err := identity.ParseSessionHeader(raw)
	if err == nil {
		err = identity.OpenSession(l.session, identity.ToEmitter, h, &c)
	}
	if err != nil {
		n.stats.unauthorized.Add(1)
		n.warn.Warn("refused an answer to a sealed dispatch", "txid", txid, "err", err)
		return dispatch.NewAnswer(dispatch.Code(err), txid, trig, jsonString(err.Error()))
	}
	n.sealing.confirm(l.sealedTo, l.session)
	return &c
}

// keyRecordOf returns to's sealing key record: cached, or asked of to
// itself with GET ["identity"] and checked against its peer id.
func (n *Node) keyRecordOf(ctx context.Context, to peer.ID) (*identity.KeyRecord, error) {
	s := n.sealing
	s.mu.Lock()
	c, ok := s.records[to]
	s.mu.Unlock()
	if ok && time.Since(c.fetched) < keyRecordTTL {
		return c.rec, nil
	}
	req := dispatch.New(dispatch.GET, "identity")
	req.Host = []dispatch.Host{{Name: to.String()}}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.answerTimeout)
	defer cancel()
	ch, err := n.Request(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("sealing: asking %s for its key: %w", to, err)
	}
	var info IdentityInfo
	var got error = dispatch.Errorf(dispatch.ErrTimeout, "sealing: %s did not give its key", to)
	for a := range ch {
		code, _, _, _ := a.AnswerInfo()
		if code >= 100 && code < 200 {
			continue
		}
		if code != 200 {
			got = dispatch.Errorf(dispatch.ErrNotGateway, "sealing: %s answered %d to GET [\"identity\"]: %s", to, code, a.Body)
			continue
		}
		if err := json.Unmarshal(a.Body, &info); err != nil {
			got = dispatch.Errorf(dispatch.ErrNotGateway, "sealing: %s's identity does not decode: %w", to, err)
			continue
		}
		got = nil
	}
	if got != nil {
		return nil, got
	}
	return s.recordFrom(to, info.Record)
}

// recordFrom checks a record (base64url envelope) as to's and caches it.
func (s *sealing) recordFrom(to peer.ID, text string) (*identity.KeyRecord, error) {
	s.mu.Lock()
	c, ok := s.records[to]
	s.mu.Unlock()
	if ok && c.raw == text {
		return c.rec, nil
	}
	if len(text) > base64.RawURLEncoding.EncodedLen(identity.MaxKeyRecordSize) {
		return nil, fmt.Errorf("%w: record of %d characters", identity.ErrBadKeyRecord, len(text))
	}
	env, err := base64.RawURLEncoding.Strict().DecodeString(text)
	if err != nil {
		return nil, fmt.Errorf("%w: not unpadded base64url", identity.ErrBadKeyRecord)
	}
	rec, err := identity.OpenKeyRecord(env, to)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if len(s.records) >= maxCachedRecords {
		clear(s.records)
	}
	s.records[to] = cachedRecord{rec: rec, raw: text, fetched: time.Now()}
	s.mu.Unlock()
	return rec, nil
}

// sessionTo returns the session to seal to, making one when there is none
// or it has served its time, and whether the recipient has it.
func (s *sealing) sessionTo(to peer.ID) (*identity.Session, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o := s.out[to]; o != nil && time.Since(o.s.Created) < identity.SessionLifetime {
		return o.s, o.confirmed, nil
	}
	sess, err := identity.NewSession(to)
	if err != nil {
		return nil, false, err
	}
	if len(s.out) >= maxSessions {
		clear(s.out)
	}
	s.out[to] = &outSession{s: sess}
	return sess, false, nil
}

// confirm records that the recipient answered in sess.
func (s *sealing) confirm(to peer.ID, sess *identity.Session) {
	s.mu.Lock()
	if o := s.out[to]; o != nil && o.s == sess {
		o.confirmed = true
	}
	s.mu.Unlock()
}

// forget drops sess, so the next dispatch makes a new session.
func (s *sealing) forget(to peer.ID, sess *identity.Session) {
	s.mu.Lock()
	if o := s.out[to]; o != nil && o.s == sess {
		delete(s.out, to)
	}
	s.mu.Unlock()
}

// acceptSession keeps a session author handed this peer; the same one
// handed again is the same session.
func (s *sealing) acceptSession(author peer.ID, secret string) (*identity.Session, error) {
	sess, err := identity.ParseSession(author, secret)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.in[sess.ID()]; old != nil {
		if old.Peer != author {
			return nil, dispatch.Errorf(dispatch.ErrBadDispatch, "%w: session id already taken", identity.ErrBadSeal)
		}
		return old, nil
	}
	if len(s.in) >= maxSessions {
		s.expireLocked()
	}
	s.in[sess.ID()] = sess
	return sess, nil
}

// sessionFrom finds a session others made with this peer, while it is
// within its lifetime (with a margin for the emitter's last dispatches).
func (s *sealing) sessionFrom(id string) *identity.Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.in[id]
	if sess == nil || time.Since(sess.Created) > sessionKeep {
		return nil
	}
	return sess
}

// sessionKeep is how long a recipient keeps a session: the emitter's
// lifetime and the answer timeout of its last dispatches, with margin.
const sessionKeep = identity.SessionLifetime + 2*time.Minute

// expireLocked makes room: the expired sessions go, and if none had, the
// oldest.
func (s *sealing) expireLocked() {
	var oldest string
	for id, sess := range s.in {
		if time.Since(sess.Created) > sessionKeep {
			delete(s.in, id)
			continue
		}
		if oldest == "" || sess.Created.Before(s.in[oldest].Created) {
			oldest = id
		}
	}
	if len(s.in) >= maxSessions && oldest != "" {
		delete(s.in, oldest)
	}
}
