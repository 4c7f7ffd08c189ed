package dispatch

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// Methods. Method names are case-insensitive on input and uppercase here.
const (
	GET     = "GET"
	POST    = "POST"
	PUT     = "PUT"
	PATCH   = "PATCH"
	DELETE  = "DELETE"
	BIND    = "BIND"
	RELEASE = "RELEASE"
	ANSWER  = "ANSWER"
)

// Version is the protocol version this engine writes.
const Version = "0.4"

// SupportedVersions are the versions accepted on input: 0.4 is the base,
// 0.5 and 0.6 add answers and richer patterns, both implemented here.
var SupportedVersions = []string{"0.4", "0.5", "0.6"}

// Kind is a dispatch's morphology.
type Kind int

const (
	// Regular dispatches name a resource: GET, POST, PUT, PATCH, DELETE.
	Regular Kind = iota
	// Subscription dispatches carry an endpoint: BIND, RELEASE.
	Subscription
	// Answer dispatches carry [code, transaction id, triggering id].
	Answer
	// Exception dispatches carry an exception header.
	Exception
)

func (k Kind) String() string {
	switch k {
	case Regular:
		return "regular"
	case Subscription:
		return "subscription"
	case Answer:
		return "answer"
	case Exception:
		return "exception"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Dispatch is one JSTP message.
//
// Resource and Token elements are scalars: string, json.Number (so 97 stays
// 97 and 1e400 is not rounded), bool, and in Token also nil. Body is kept as
// raw JSON so it crosses gateways byte for byte. Headers this package does
// not know are kept in Extra under their lowercase name, with their raw
// value, and are encoded again after the known ones, sorted by name.
type Dispatch struct {
	Protocol  []string
	Method    string
	Resource  []any
	Timestamp int64
	Token     []any
	Host      []Host
	Body      json.RawMessage
	Endpoint  *Endpoint
	Exception *ExceptionInfo
	Extra     Headers
}

// Host is one element of the host chain. The plain string form sets Name
// only; the Node engine's [hostname, port, transport] form sets all three.
type Host struct {
	Name      string
	Port      int
	Transport string
}

// String renders the element: "name", or "name:port" with "/transport"
// appended when one is given.
func (h Host) String() string {
	if h.Port == 0 && h.Transport == "" {
		return h.Name
	}
	s := h.Name
	if strings.Contains(s, ":") && !strings.HasPrefix(s, "[") {
		s = "[" + s + "]"
	}
	if h.Port != 0 {
		s += ":" + strconv.Itoa(h.Port)
	}
	if h.Transport != "" {
		s += "/" + h.Transport
	}
	return s
}

// IsTuple reports whether the element is written in the array form.
func (h Host) IsTuple() bool { return h.Port != 0 || h.Transport != "" }

// Endpoint is a subscription target: a method pattern (a method or "*")
// and a resource pattern (see Pattern).
type Endpoint struct {
	Method   string   `json:"method"`
	Resource []string `json:"resource"`
}

// String renders the endpoint as "METHOD /a/b".
func (e Endpoint) String() string {
	return e.Method + " /" + strings.Join(e.Resource, "/")
}

// Equal reports whether two endpoints are the same pattern.
func (e Endpoint) Equal(o Endpoint) bool {
	if !strings.EqualFold(e.Method, o.Method) || len(e.Resource) != len(o.Resource) {
		return false
	}
	for i := range e.Resource {
		if e.Resource[i] != o.Resource[i] {
			return false
		}
	}
	return true
}

// ExceptionInfo is the exception header.
type ExceptionInfo struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// New returns a regular dispatch stamped now, with protocol ["JSTP","0.4"].
// Resource elements may be strings, integers, floats, bools or json.Number.
func New(method string, resource ...any) *Dispatch {
	d := &Dispatch{
		Protocol:  []string{"JSTP", Version},
		Method:    strings.ToUpper(method),
		Timestamp: time.Now().UnixMilli(),
	}
	for _, r := range resource {
		d.Resource = append(d.Resource, normScalar(r))
	}
	return d
}

// NewSubscription returns a BIND or RELEASE dispatch for ep, stamped now.
func NewSubscription(method string, ep Endpoint) *Dispatch {
	e := ep
	e.Method = strings.ToUpper(e.Method)
	return &Dispatch{
		Protocol:  []string{"JSTP", Version},
		Method:    strings.ToUpper(method),
		Timestamp: time.Now().UnixMilli(),
		Endpoint:  &e,
	}
}

// NewAnswer returns the ANSWER to transaction txid from the triggered
// subscriber trigID (empty when the answer speaks for the whole
// transaction, as a 404 for "nothing bound" does).
func NewAnswer(code int, txid, trigID string, body json.RawMessage) *Dispatch {
	// Every request is answered, so this is on the hot path: the resource
	// and the token share one allocation, the transaction id is boxed
	// once, and codes and the protocol header are shared values.
	tx := any(txid)
	n := 2
	if trigID != "" {
		n = 3
	}
	vals := make([]any, n+1)
	vals[0], vals[1] = codeValue(code), tx
	if trigID != "" {
		vals[2] = trigID
	}
	vals[n] = tx
	return &Dispatch{
		Protocol:  answerProtocol[:2:2],
		Method:    ANSWER,
		Resource:  vals[:n:n],
		Timestamp: time.Now().UnixMilli(),
		Token:     vals[n : n+1 : n+1],
		Body:      body,
	}
}

// answerProtocol is the protocol header of the answers NewAnswer makes,
// shared: nothing writes a dispatch's Protocol in place (Clone copies it,
// and a full slice expression makes append copy too).
var answerProtocol = []string{"JSTP", Version}

// codeValues holds the status codes 100–599 as resource elements, boxed
// once.
var codeValues = func() (v [500]any) {
	for i := range v {
		v[i] = json.Number(strconv.Itoa(100 + i))
	}
	return v
}()

func codeValue(code int) any {
	if code >= 100 && code < 600 {
		return codeValues[code-100]
	}
	return json.Number(strconv.Itoa(code))
}

// NewException returns the exception dispatch for err (its code from Code,
// its message from err). When the offending dispatch is known its method,
// resource, endpoint and token are copied so the source can tell which
// dispatch failed; a 400 for unparsable input has none of them.
func NewException(err error, offending *Dispatch) *Dispatch {
	d := &Dispatch{
		Protocol:  []string{"JSTP", Version},
		Timestamp: time.Now().UnixMilli(),
		Exception: &ExceptionInfo{Code: Code(err), Message: err.Error()},
	}
	if offending != nil {
		d.Method = offending.Method
		d.Resource = offending.Resource
		d.Endpoint = offending.Endpoint
		d.Token = offending.Token
	}
	return d
}

// Kind returns the dispatch's morphology.
func (d *Dispatch) Kind() Kind {
	switch {
	case d.Exception != nil:
		return Exception
	case d.Method == ANSWER:
		return Answer
	case d.Method == BIND || d.Method == RELEASE:
		return Subscription
	}
	return Regular
}

// TransactionID is token[0] when it is a non-empty string: the id answers
// refer to. Empty means no answer is wanted.
func (d *Dispatch) TransactionID() string {
	if len(d.Token) == 0 {
		return ""
	}
	s, _ := d.Token[0].(string)
	return s
}

// AnswerInfo returns an answer's code, transaction id and triggering id
// (empty when the answer speaks for the whole transaction). ok is false
// when d is not a well-formed answer.
func (d *Dispatch) AnswerInfo() (code int, txid, trigID string, ok bool) {
	if d.Method != ANSWER || len(d.Resource) < 2 || len(d.Resource) > 3 {
		return 0, "", "", false
	}
	n, isNum := d.Resource[0].(json.Number)
	if !isNum {
		return 0, "", "", false
	}
	c, err := strconv.Atoi(string(n))
	if err != nil {
		return 0, "", "", false
	}
	txid, _ = d.Resource[1].(string)
	if len(d.Resource) == 3 {
		trigID, _ = d.Resource[2].(string)
	}
	return c, txid, trigID, txid != ""
}

// ResourceText returns the resource as strings, the form patterns match:
// strings as they are, numbers as their literal text, bools as true/false.
// For subscription dispatches it is the endpoint's resource pattern, which
// is what BIND-on-BIND endpoints match.
func (d *Dispatch) ResourceText() []string {
	if d.Kind() == Subscription && d.Endpoint != nil {
		return d.Endpoint.Resource
	}
	out := make([]string, len(d.Resource))
	for i, r := range d.Resource {
		out[i] = ScalarText(r)
	}
	return out
}

// ScalarText is the text of a resource or token element.
func ScalarText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return string(x)
	case bool:
		if x {
			return "true"
		}
		return "false"
	case nil:
		return "null"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// normScalar turns Go numbers into json.Number so every scalar in a
// Dispatch has one of the documented types.
func normScalar(v any) any {
	switch x := v.(type) {
	case int:
		return json.Number(strconv.Itoa(x))
	case int64:
		return json.Number(strconv.FormatInt(x, 10))
	case int32:
		return json.Number(strconv.FormatInt(int64(x), 10))
	case uint64:
		return json.Number(strconv.FormatUint(x, 10))
	case float64:
		return json.Number(strconv.FormatFloat(x, 'g', -1, 64))
	}
	return v
}

// Clone returns a copy that shares nothing mutable with d except the raw
// JSON values (Body and Extra values), which are never modified in place.
func (d *Dispatch) Clone() *Dispatch {
	c := *d
	c.Protocol = append([]string(nil), d.Protocol...)
	c.Resource = append([]any(nil), d.Resource...)
	if d.Token != nil {
		c.Token = append([]any{}, d.Token...)
	}
	c.Host = append([]Host(nil), d.Host...)
	if d.Endpoint != nil {
		e := *d.Endpoint
		e.Resource = append([]string(nil), d.Endpoint.Resource...)
		c.Endpoint = &e
	}
	if d.Exception != nil {
		x := *d.Exception
		c.Exception = &x
	}
	// Extra is never changed in place (see Headers): c may share it.
	return &c
}
