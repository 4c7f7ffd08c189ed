package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxConfigSize bounds the config file; anything larger is not a config.
const maxConfigSize = 1 << 20

// applyFile takes the config file's values for the settings no flag or
// environment variable set.
func (s *settings) applyFile(path string, values map[string]json.RawMessage) error {
	src := "file " + path
	for _, def := range settingDefs {
		raw, ok := values[def.key]
		if !ok || s.sourced(def.key) {
			continue
		}
		bad := func(want string) error {
			return fmt.Errorf("config file %s: %q must be %s", path, def.key, want)
		}
		switch def.kind {
		case kindString:
			var v string
			if err := json.Unmarshal(raw, &v); err != nil {
				return bad("a string")
			}
			if def.key == keyDataDir && v == "" {
				continue // empty means unset: the default
			}
			s.str[def.key] = v
		case kindList:
			var v []string
			if err := json.Unmarshal(raw, &v); err != nil {
				// A single string is a one-element list: forgiving what
				// people naturally write for one bootstrap peer.
				var one string
				if json.Unmarshal(raw, &one) != nil {
					return bad("an array of strings")
				}
				v = []string{one}
			}
			var clean []string
			for _, e := range v {
				clean = append(clean, splitList(e)...)
			}
			s.list[def.key] = clean
		case kindBool:
			var v bool
			if err := json.Unmarshal(raw, &v); err != nil {
				return bad("true or false")
			}
			s.switches[def.key] = v
		}
		s.mark(def.key, src)
	}
	return nil
}

// readConfigFile reads a config file: one JSON object whose keys are
// setting names or comments ("_..."). Unknown and repeated keys are
// errors, so a typo does not silently fall back to a default.
func readConfigFile(path string) (map[string]json.RawMessage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("config file %s: larger than %d bytes, not a config file", path, maxConfigSize)
	}
	values, err := parseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return values, nil
}

// parseConfig parses a config file's text; see readConfigFile.
func parseConfig(data []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New(`want a JSON object, {"listen": [...], ...}`)
	}
	values := map[string]json.RawMessage{}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("not JSON: %w", err)
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("not JSON: value of %q: %w", key, err)
		}
		if seen[key] {
			return nil, fmt.Errorf("key %q given twice", key)
		}
		seen[key] = true
		if strings.HasPrefix(key, "_") {
			continue // a comment
		}
		if def := lookupDef(key); def == nil || def.key == keyConfig {
			return nil, fmt.Errorf("unknown key %q (known: %s; keys starting with \"_\" are comments)", key, strings.Join(fileKeys(), ", "))
		}
		values[key] = raw
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("text after the JSON object")
	}
	return values, nil
}

// fileKeys are the settings a config file may hold.
func fileKeys() []string {
	var keys []string
	for _, def := range settingDefs {
		if def.key != keyConfig {
			keys = append(keys, def.key)
		}
	}
	return keys
}
