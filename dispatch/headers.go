package dispatch

import (
	"encoding/json"
	"slices"
	"strings"
)

// Header is a header this package does not know: its lowercase name and
// its raw JSON value.
type Header struct {
	Name  string
	Value json.RawMessage
}

// Headers are a dispatch's headers that this package does not know,
// sorted by name, each name once.
//
// A dispatch carries a few of them (an engine's hop count and label, a
// signature), and it is read and written once per hop: a slice of them
// costs a fraction of a map, which takes about 400 bytes however few its
// keys.
//
// Headers are never changed in place: Set and Delete store a new slice,
// so copies of a Dispatch made with c := *d change their headers
// independently. Values are shared, and never modified in place either.
type Headers []Header

// search returns where name is, or would be inserted, and whether it is.
func (h Headers) search(name string) (int, bool) {
	return slices.BinarySearchFunc(h, name, func(e Header, name string) int { return strings.Compare(e.Name, name) })
}

// Get returns the value of the header name and whether it is present.
func (h Headers) Get(name string) (json.RawMessage, bool) {
	if i, ok := h.search(name); ok {
		return h[i].Value, true
	}
	return nil, false
}

// Value returns the value of the header name, nil when it is absent.
func (h Headers) Value(name string) json.RawMessage {
	v, _ := h.Get(name)
	return v
}

// Has reports whether the header name is present.
func (h Headers) Has(name string) bool {
	_, ok := h.search(name)
	return ok
}

// Set stores a new slice with the header name set to v.
func (h *Headers) Set(name string, v json.RawMessage) {
	i, ok := h.search(name)
	n := len(*h)
	if !ok {
		n++
	}
	c := make(Headers, n)
	copy(c, (*h)[:i])
	c[i] = Header{Name: name, Value: v}
	if ok {
		copy(c[i+1:], (*h)[i+1:])
	} else {
		copy(c[i+1:], (*h)[i:])
	}
	*h = c
}

// Delete stores a new slice without the header name (nil when none is
// left), and reports whether it was present.
func (h *Headers) Delete(name string) bool {
	i, ok := h.search(name)
	if !ok {
		return false
	}
	if len(*h) == 1 {
		*h = nil
		return true
	}
	*h = slices.Concat((*h)[:i], (*h)[i+1:])
	return true
}

// Clone returns a copy of the slice (the values are shared).
func (h Headers) Clone() Headers {
	if h == nil {
		return nil
	}
	return slices.Clone(h)
}

// add inserts a header into headers being built (which nothing shares)
// and reports false when the name is present already.
func (h *Headers) add(name string, v json.RawMessage) bool {
	i, ok := h.search(name)
	if ok {
		return false
	}
	if *h == nil {
		*h = make(Headers, 0, 2) // an engine's hop count and label, usually
	}
	*h = slices.Insert(*h, i, Header{Name: name, Value: v})
	return true
}
