package webui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/node"
)

// Bounds of the view's own API.
const (
	// maxParseBody bounds a /api/parse request: the notation's own limit
	// (dispatch.DefaultMaxSize), escaped as a JSON string, which can
	// double it, and a little more.
	maxParseBody = 2*dispatch.DefaultMaxSize + 4096
	// maxReplicaBody bounds a /api/replica request: a peer id.
	maxReplicaBody = 4096
	// replicaTimeout bounds one run of the AddReplica action, as
	// `up --on-critical` bounds its command.
	replicaTimeout = time.Minute
	// lookupTimeout bounds asking the peer for its saturation table.
	lookupTimeout = 5 * time.Second
)

// configDoc is the body of GET /api/config: what the page needs before it
// can connect.
type configDoc struct {
	Peer    string `json:"peer"`
	Version string `json:"version"`
	Gateway string `json:"gateway"`
	Replica bool   `json:"replica"`
}

func (h *handler) config(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, configDoc{
		Peer:    h.p.Host.ID().String(),
		Version: node.Version,
		Gateway: h.gatewayURL(r),
		Replica: h.cfg.AddReplica != nil,
	})
}

// parseRequest is the body of POST /api/parse. As "dispatch" (the
// default), Text is a dispatch in any notation (JSON, URL, HTTP-like);
// as "endpoint", an endpoint as `jstp-peer bind` takes it ("POST
// jstp://HOSTS/news/*", or JSON {"method","resource"} with the host chain
// in Host, written as in a URL).
type parseRequest struct {
	Text string `json:"text"`
	As   string `json:"as"`
	Host string `json:"host"`
}

// apiError is the body of every failed API call; Code is the JSTP code
// when the failure is the dispatch's.
type apiError struct {
	Error string `json:"error"`
	Code  int    `json:"code,omitempty"`
}

// parse reads a notation with the CLI's rules (quirks: JSON typed by hand
// may leave out the protocol and the timestamp) and answers the
// dispatch as JSON: {"dispatch": {...}}. An endpoint comes back as the
// BIND that subscribes to it.
func (h *handler) parse(w http.ResponseWriter, r *http.Request) {
	if !h.sameOrigin(w, r) {
		return
	}
	var req parseRequest
	if !readJSON(w, r, maxParseBody, &req) {
		return
	}
	var d *dispatch.Dispatch
	var err error
	switch req.As {
	case "", "dispatch":
		if strings.TrimSpace(req.Host) != "" {
			err = dispatch.Errorf(dispatch.ErrBadDispatch, "a dispatch names its host chain itself")
			break
		}
		d, err = dispatch.ParseNotation([]byte(req.Text), dispatch.Decoder{Quirks: true})
	case "endpoint":
		d, err = parseEndpoint(req.Text, req.Host)
	default:
		writeJSON(w, http.StatusBadRequest, apiError{Error: fmt.Sprintf("as: %q is not dispatch or endpoint", req.As)})
		return
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Error: err.Error(), Code: dispatch.Code(err)})
		return
	}
	writeJSON(w, http.StatusOK, map[string]json.RawMessage{"dispatch": d.AppendJSON(nil)})
}

// parseEndpoint reads an endpoint as the CLI's bind command does and
// returns the BIND for it.
func parseEndpoint(text, hostText string) (*dispatch.Dispatch, error) {
	var hosts []dispatch.Host
	var ep dispatch.Endpoint
	var err error
	text = strings.TrimSpace(text)
	if strings.HasPrefix(text, "{") {
		if len(text) > dispatch.DefaultMaxSize {
			return nil, dispatch.Errorf(dispatch.ErrTooLarge, "the endpoint exceeds %d bytes", dispatch.DefaultMaxSize)
		}
		dec := json.NewDecoder(strings.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ep); err != nil {
			return nil, dispatch.Errorf(dispatch.ErrBadDispatch, `an endpoint is {"method": "POST", "resource": ["news", "*"]}: %v`, err)
		}
		ep.Method = strings.ToUpper(ep.Method)
		if err := ep.Validate(); err != nil {
			return nil, err
		}
	} else if hosts, ep, err = dispatch.ParseEndpointURL(text); err != nil {
		return nil, err
	}
	if _, err := dispatch.CompileEndpoint(ep); err != nil {
		return nil, err
	}
	if h := strings.TrimSpace(hostText); h != "" {
		if len(hosts) > 0 {
			return nil, dispatch.Errorf(dispatch.ErrBadDispatch, "the URL names a host and so does the host field: give one")
		}
		// The host chain is written as in a URL, where white space
		// cannot be (so none is lost here): that parser reads it.
		h = strings.Join(strings.Fields(h), "")
		if hosts, _, err = dispatch.ParseEndpointURL("GET jstp://" + h + "/x"); err != nil {
			return nil, fmt.Errorf("host %q: %w", h, err)
		}
	}
	d := dispatch.NewSubscription(dispatch.BIND, ep)
	d.Host = hosts
	return d, d.Validate()
}

// addReplica runs Config.AddReplica for the peer named in the body
// ({"peer": ID}) with that peer's latest saturation report.
func (h *handler) addReplica(w http.ResponseWriter, r *http.Request) {
	if !h.sameOrigin(w, r) {
		return
	}
	var req struct {
		Peer string `json:"peer"`
	}
	if !readJSON(w, r, maxReplicaBody, &req) {
		return
	}
	if req.Peer == "" {
		writeJSON(w, http.StatusBadRequest, apiError{Error: `the body is {"peer": PEER_ID}`})
		return
	}
	report, err := h.report(r.Context(), req.Peer)
	if err != nil {
		writeJSON(w, http.StatusNotFound, apiError{Error: err.Error()})
		return
	}
	if !h.replica.TryLock() {
		writeJSON(w, http.StatusConflict, apiError{Error: "a replica is being added already; try again when it is done"})
		return
	}
	defer h.replica.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), replicaTimeout)
	defer cancel()
	h.log.Info("adding a replica", "peer", req.Peer)
	if err := h.cfg.AddReplica(ctx, report); err != nil {
		h.log.Warn("adding a replica failed", "peer", req.Peer, "err", err)
		writeJSON(w, http.StatusBadGateway, apiError{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"peer": req.Peer})
}

// report asks the peer for its saturation table (GET ["saturation"]) and
// returns the latest report of id, as the peer gossips it.
func (h *handler) report(ctx context.Context, id string) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	ch, err := h.p.Node.Request(ctx, dispatch.New(dispatch.GET, "saturation"))
	if err != nil {
		return nil, fmt.Errorf("the peer's saturation table: %w", err)
	}
	var body json.RawMessage
	code := 0
	for a := range ch {
		if code == 0 {
			code, _, _, _ = a.AnswerInfo()
			body = a.Body
		}
	}
	if code != 200 {
		return nil, fmt.Errorf("the peer's saturation table: answer %d: %s", code, body)
	}
	var v struct {
		Self  json.RawMessage   `json:"self"`
		Peers []json.RawMessage `json:"peers"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("the peer's saturation table: %w", err)
	}
	for _, raw := range append([]json.RawMessage{v.Self}, v.Peers...) {
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil {
			continue
		}
		var peer string
		if json.Unmarshal(m["peer"], &peer) != nil || peer != id {
			continue
		}
		// The table adds the report's age; the action gets the report
		// as the peer published it.
		delete(m, "ageMs")
		return json.Marshal(m)
	}
	return nil, fmt.Errorf("no saturation report from peer %s", id)
}

// sameOrigin admits only the view's own page: a POST whose Origin is the
// view's, and whose body is JSON (a type no cross-site form can send
// without the browser asking first). It answers 403 otherwise.
func (h *handler) sameOrigin(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	switch {
	case origin == "":
		writeJSON(w, http.StatusForbidden, apiError{Error: "only the web view's own page may do this: no Origin header"})
		return false
	case !strings.EqualFold(origin, "http://"+r.Host):
		h.refused.Info("cross-origin request refused", "origin", origin, "path", r.URL.Path, "remote", r.RemoteAddr)
		writeJSON(w, http.StatusForbidden, apiError{Error: "only the web view's own page may do this: origin " + origin + " is another"})
		return false
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		writeJSON(w, http.StatusForbidden, apiError{Error: "only the web view's own page may do this: Sec-Fetch-Site is " + site})
		return false
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeJSON(w, http.StatusUnsupportedMediaType, apiError{Error: "the body must be application/json"})
		return false
	}
	return true
}

// readJSON decodes a bounded JSON body into v, answering 400 or 413 when
// it cannot.
func readJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if mbe := new(http.MaxBytesError); errors.As(err, &mbe) {
			writeJSON(w, http.StatusRequestEntityTooLarge, apiError{Error: fmt.Sprintf("the body exceeds %d bytes", limit), Code: 413})
			return false
		}
		writeJSON(w, http.StatusBadRequest, apiError{Error: "the body is not the JSON expected: " + err.Error()})
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"the answer does not encode"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
