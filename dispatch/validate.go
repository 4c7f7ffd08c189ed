package dispatch

import (
	"encoding/json"
	"strings"
)

// Validate checks the dispatch against the rules of its morphology and
// returns the first violation as an error that Code maps to 400, 405 or
// 505. It does not modify d.
// MaxHostChain bounds the host chain: twice the hops a dispatch may make
// (node.DefaultMaxHops), room for names that mean the engine itself,
// which cost no hop. A longer chain could never be followed to its end.
const MaxHostChain = 32

func (d *Dispatch) Validate() error {
	if err := d.validateProtocol(); err != nil {
		return err
	}
	if len(d.Host) > MaxHostChain {
		return Errorf(ErrBadDispatch, "host chain of %d elements; at most %d", len(d.Host), MaxHostChain)
	}
	if d.Timestamp == 0 {
		return Errorf(ErrBadDispatch, "missing header \"timestamp\"")
	}
	if d.Exception != nil {
		if d.Exception.Code < 100 || d.Exception.Code > 599 {
			return Errorf(ErrBadDispatch, "exception code %d is not a status code (100-599)", d.Exception.Code)
		}
		return nil
	}
	if d.Method == "" {
		return Errorf(ErrBadDispatch, "missing header \"method\"")
	}
	if !KnownMethod(d.Method) {
		return Errorf(ErrMethodNotAllowed, "unknown method %q (want GET, POST, PUT, PATCH, DELETE, BIND, RELEASE or ANSWER)", clip(d.Method))
	}
	switch d.Kind() {
	case Subscription:
		if d.Resource != nil {
			return Errorf(ErrBadDispatch, "header \"resource\" is illegal on %s; the target goes in \"endpoint\"", d.Method)
		}
		if d.Endpoint == nil {
			return Errorf(ErrBadDispatch, "missing header \"endpoint\" (required with %s)", d.Method)
		}
		return d.Endpoint.Validate()
	case Answer:
		if d.Endpoint != nil {
			return Errorf(ErrBadDispatch, "header \"endpoint\" is illegal on ANSWER")
		}
		if _, _, _, ok := d.AnswerInfo(); !ok {
			return Errorf(ErrBadDispatch, "ANSWER resource must be [statusCode, transactionID] or [statusCode, transactionID, triggeringID]")
		}
		if len(d.Resource) == 3 {
			if s, ok := d.Resource[2].(string); !ok || s == "" {
				return Errorf(ErrBadDispatch, "ANSWER triggering id must be a non-empty string")
			}
		}
		return nil
	}
	if d.Endpoint != nil {
		return Errorf(ErrBadDispatch, "header \"endpoint\" is illegal on %s (only BIND and RELEASE take one)", d.Method)
	}
	if d.Resource == nil {
		return Errorf(ErrBadDispatch, "missing header \"resource\"")
	}
	if len(d.Resource) == 0 {
		return Errorf(ErrBadDispatch, "header \"resource\" is empty")
	}
	for i, r := range d.Resource {
		switch x := r.(type) {
		case string:
			if x == "" {
				return Errorf(ErrBadDispatch, "resource element %d is an empty string", i)
			}
		case bool, json.Number:
		default:
			return Errorf(ErrBadDispatch, "resource element %d must be a non-empty string, a number or a boolean", i)
		}
	}
	return nil
}

func (d *Dispatch) validateProtocol() error {
	if d.Protocol == nil {
		return Errorf(ErrBadDispatch, "missing header \"protocol\" (want [\"JSTP\", %q])", Version)
	}
	if len(d.Protocol) == 0 || !strings.EqualFold(d.Protocol[0], "JSTP") {
		return Errorf(ErrBadDispatch, "header \"protocol\" must start with \"JSTP\"")
	}
	if len(d.Protocol) < 2 {
		return Errorf(ErrBadDispatch, "header \"protocol\" must name a version, as in [\"JSTP\", %q]", Version)
	}
	for _, v := range SupportedVersions {
		if d.Protocol[1] == v {
			return nil
		}
	}
	return Errorf(ErrVersion, "JSTP version %q is not supported (this engine speaks %s)", clip(d.Protocol[1]), strings.Join(SupportedVersions, ", "))
}

// Validate checks an endpoint: a known method or "*", and a resource
// pattern that compiles.
func (e Endpoint) Validate() error {
	if e.Method == "" {
		return Errorf(ErrBadDispatch, "endpoint has no method")
	}
	if e.Method != "*" && !KnownMethod(e.Method) {
		return Errorf(ErrMethodNotAllowed, "endpoint method %q is not a JSTP method or \"*\"", clip(e.Method))
	}
	_, err := CompilePattern(e.Resource)
	return err
}

// KnownMethod reports whether m (uppercase) is a JSTP method.
func KnownMethod(m string) bool {
	switch m {
	case GET, POST, PUT, PATCH, DELETE, BIND, RELEASE, ANSWER:
		return true
	}
	return false
}
