package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// decodeObject decodes raw, a JSON object, into members: each member name,
// matched exactly, points at where its value goes. Unknown, repeated and
// missing members and trailing data are errors, so a header or record
// has exactly one reading (encoding/json alone matches names
// case-insensitively and lets the last of two equal names win).
func decodeObject(raw []byte, members map[string]any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil {
		return err
	} else if tok != json.Delim('{') {
		return errors.New("not a JSON object")
	}
	seen := make(map[string]bool, len(members))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := tok.(string)
		dst, ok := members[name]
		if !ok {
			return fmt.Errorf("unknown member %q", clip(name))
		}
		if seen[name] {
			return fmt.Errorf("member %q given twice", name)
		}
		seen[name] = true
		if err := dec.Decode(dst); err != nil {
			return fmt.Errorf("member %q: %w", name, err)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the object")
	}
	for name := range members {
		if !seen[name] && !optional[name] {
			return fmt.Errorf("missing member %q", name)
		}
	}
	return nil
}

// optional are the members decodeObject does not require: "hdrs" of a
// signature, which a dispatch without extension headers leaves out, and
// "to", which one without a named recipient does.
var optional = map[string]bool{"hdrs": true, "to": true}
