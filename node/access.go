package node

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jstp-peer/jstp-peer/dispatch"
)

// Access rules (docs/security.md): who may send what to this peer. A rule
// names peers (ids, @groups, or "*"), a method pattern and a resource
// pattern, as an endpoint does; the first rule that matches a dispatch
// processed here decides, and a dispatch no rule matches is allowed. The
// application and this machine's gateway clients are never checked: they
// are the operator. A refused dispatch is answered 403, counted and
// logged (rate-limited).
//
// Allowed unless denied, because a peer is on a mesh to be reached: its
// built-in resources that act on the machine are local-only already
// (LocalOnly), and a handler an application registers is meant to be
// used. Rules restrict from there: who may BIND where, who may write.

// AccessRules are parsed access rules; the zero value allows everything.
type AccessRules struct {
	groups map[string][]peer.ID
	rules  []accessRule
}

type accessRule struct {
	allow bool
	any   bool // "*" among the peers
	peers []peer.ID
	ep    *dispatch.CompiledEndpoint
	src   string // for messages
}

// accessFile is the JSON form:
//
//	{"groups": {"ops": ["12D3KooW…"]},
//	 "rules": [{"action": "allow", "peers": ["@ops"], "method": "*", "resource": ["admin", "..."]},
//	           {"action": "deny",  "peers": ["*"],   "method": "*", "resource": ["admin", "..."]}]}
type accessFile struct {
	Groups map[string][]string `json:"groups"`
	Rules  []struct {
		Action   string   `json:"action"`
		Peers    []string `json:"peers"`
		Method   string   `json:"method"`
		Resource []string `json:"resource"`
	} `json:"rules"`
}

// MaxAccessRules bounds the rules of one file: they are checked in order
// for every dispatch from another peer.
const MaxAccessRules = 1024

// ParseAccessRules reads access rules in their JSON form, strictly: an
// unknown member, an unknown group, a malformed peer id or pattern is an
// error that says where.
func ParseAccessRules(data []byte) (*AccessRules, error) {
	var f accessFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("access rules: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("access rules: data after the object")
	}
	if len(f.Rules) > MaxAccessRules {
		return nil, fmt.Errorf("access rules: %d rules, at most %d", len(f.Rules), MaxAccessRules)
	}
	a := &AccessRules{groups: map[string][]peer.ID{}}
	for name, ids := range f.Groups {
		for _, s := range ids {
			id, err := peer.Decode(s)
			if err != nil {
				return nil, fmt.Errorf("access rules: group %q: %q is not a peer id", name, s)
			}
			a.groups[name] = append(a.groups[name], id)
		}
	}
	for i, r := range f.Rules {
		where := fmt.Sprintf("access rules: rule %d", i+1)
		var rule accessRule
		switch r.Action {
		case "allow":
			rule.allow = true
		case "deny":
		default:
			return nil, fmt.Errorf("%s: action %q: want allow or deny", where, r.Action)
		}
		if len(r.Peers) == 0 {
			return nil, fmt.Errorf(`%s: no peers (use ["*"] for everyone)`, where)
		}
		for _, p := range r.Peers {
			switch {
			case p == "*":
				rule.any = true
			case strings.HasPrefix(p, "@"):
				ids, ok := a.groups[p[1:]]
				if !ok {
					return nil, fmt.Errorf("%s: no group %q", where, p[1:])
				}
				rule.peers = append(rule.peers, ids...)
			default:
				id, err := peer.Decode(p)
				if err != nil {
					return nil, fmt.Errorf("%s: %q is not a peer id, @group or *", where, p)
				}
				rule.peers = append(rule.peers, id)
			}
		}
		method := r.Method
		if method == "" {
			method = "*"
		}
		ep, err := dispatch.CompileEndpoint(dispatch.Endpoint{Method: method, Resource: r.Resource})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		rule.ep = ep
		rule.src = fmt.Sprintf("rule %d (%s %s)", i+1, r.Action, ep.Endpoint)
		a.rules = append(a.rules, rule)
	}
	return a, nil
}

// Allowed reports whether author may send d here, and the rule that
// decided ("" when none did).
func (a *AccessRules) Allowed(author string, d *dispatch.Dispatch) (bool, string) {
	if a == nil {
		return true, ""
	}
	id := peer.ID("")
	if decoded, err := peer.Decode(author); err == nil {
		id = decoded
	}
	for _, r := range a.rules {
		if !r.any && (id == "" || !slices.Contains(r.peers, id)) {
			continue
		}
		if _, ok := r.ep.Match(d); !ok {
			continue
		}
		return r.allow, r.src
	}
	return true, ""
}

// SetAccessRules replaces the engine's access rules (nil: allow all). It
// takes effect for the next dispatch: rules reload without a restart.
func (n *Node) SetAccessRules(a *AccessRules) { n.access.Store(a) }

// checkAccess refuses a dispatch the rules deny.
func (n *Node) checkAccess(d *dispatch.Dispatch, rt replyTo) error {
	a := n.access.Load()
	if a == nil || fromThisMachine(rt.o) {
		return nil
	}
	author := n.authorOf(rt)
	if ok, rule := a.Allowed(author, d); !ok {
		n.stats.forbidden.Add(1)
		n.warn.Warn("refused by an access rule", "author", author, "rule", rule, "dispatch", d)
		return dispatch.Errorf(dispatch.ErrForbidden, "%s may not %s %s here (%s)", author, d.Method, strings.Join(d.ResourceText(), "/"), rule)
	}
	return nil
}
