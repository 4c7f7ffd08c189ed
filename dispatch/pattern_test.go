package dispatch

import (
	"maps"
	"strings"
	"testing"
)

func TestPatternMatch(t *testing.T) {
	cases := []struct {
		pattern  string
		resource string
		match    bool
		params   map[string]string
	}{
		// PROTOCOL.md's example, both resources.
		{"path/.../text/.../:ext", "path/folder/internal/text/value/txt", true, map[string]string{"ext": "txt"}},
		{"path/.../text/.../:ext", "path/text/md", true, map[string]string{"ext": "md"}},
		{"path/.../text/.../:ext", "path/folder/md", false, nil},
		{"foods/pizza", "foods/pizza", true, nil},
		{"foods/pizza", "foods/Pizza", false, nil}, // case-sensitive
		{"foods/pizza", "foods/pizza/extra", false, nil},
		{"foods/*", "foods/pizza", true, nil},
		{"foods/*", "foods", false, nil},
		{"foods/*", "foods/a/b", false, nil},
		{"foods/...", "foods", true, nil},
		{"foods/...", "foods/a/b/c", true, nil},
		{".../last", "last", true, nil},
		{".../last", "a/b/last", true, nil},
		{".../last", "a/b/last/x", false, nil},
		{"...", "anything/at/all", true, nil},
		{"a/.../b/.../c", "a/x/b/y/b/c", true, nil},
		{"a/.../b/.../c", "a/b/c", true, nil},
		{"a/.../b/.../c", "a/c/b", false, nil},
		// Non-greedy: the first "..." stops at the first "b".
		{"a/.../:x/b/...", "a/1/b/2/b", true, map[string]string{"x": "1"}},
		{"users/:id", "users/97", true, map[string]string{"id": "97"}},
		{"users/:id/posts/:post", "users/1/posts/2", true, map[string]string{"id": "1", "post": "2"}},
		// Escapes.
		{`\*`, "*", true, nil},
		{`\*`, "x", false, nil},
		{`a/\...`, "a/...", true, nil},
		{`a/\...`, "a/b/c", false, nil},
		{`\\*`, `\*`, true, nil},
		{`\:id`, ":id", true, nil},
		{`\:id`, "7", false, nil},
	}
	for _, c := range cases {
		t.Run(c.pattern+"~"+c.resource, func(t *testing.T) {
			p, err := CompilePattern(strings.Split(c.pattern, "/"))
			if err != nil {
				t.Fatal(err)
			}
			params, ok := p.Match(strings.Split(c.resource, "/"))
			if ok != c.match {
				t.Fatalf("match = %v, want %v", ok, c.match)
			}
			if c.match && c.params != nil && !maps.Equal(params, c.params) {
				t.Fatalf("params = %v, want %v", params, c.params)
			}
		})
	}
}

func TestPatternCompileErrors(t *testing.T) {
	for _, p := range [][]string{{}, {""}, {"a", ""}, {":"}, {`\`}, {":x", ":x"}, make([]string, MaxPatternElements+1)} {
		if _, err := CompilePattern(p); Code(err) != 400 {
			t.Errorf("%q: err = %v, want 400", p, err)
		}
	}
}

func TestPatternManyEllipsesStaysPolynomial(t *testing.T) {
	// 40 "..." against 2,000 elements that almost match: without the
	// failure memo this backtracks exponentially and never finishes.
	pat := make([]string, 0, 81)
	for i := 0; i < 40; i++ {
		pat = append(pat, "...", "a")
	}
	pat = append(pat, "b")
	res := make([]string, 2000)
	for i := range res {
		res[i] = "a"
	}
	p, err := CompilePattern(pat)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Match(res); ok {
		t.Fatal("matched without the final b")
	}
}

func TestEndpointMatch(t *testing.T) {
	mk := func(m string, r ...string) *CompiledEndpoint {
		c, err := CompileEndpoint(Endpoint{Method: m, Resource: r})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	get := New("GET", "users", 97)
	if _, ok := mk("get", "users", "97").Match(get); !ok {
		t.Fatal("lowercase method pattern or numeric element did not match")
	}
	if _, ok := mk("*", "users", "*").Match(get); !ok {
		t.Fatal("method * did not match")
	}
	if _, ok := mk("POST", "users", "*").Match(get); ok {
		t.Fatal("POST matched GET")
	}
	// Bind to binds: a BIND endpoint matches BIND dispatches by their
	// endpoint's resource pattern, whatever method that endpoint names.
	bind := NewSubscription("BIND", Endpoint{Method: "PUT", Resource: []string{"chat", "*"}})
	if _, ok := mk("BIND", "chat", "...").Match(bind); !ok {
		t.Fatal("BIND endpoint did not match a BIND")
	}
	if _, ok := mk("GET", "chat", "...").Match(bind); ok {
		t.Fatal("GET endpoint matched a BIND")
	}
	if _, ok := mk("RELEASE", "chat", "...").Match(bind); ok {
		t.Fatal("RELEASE endpoint matched a BIND")
	}
	ans := NewAnswer(200, "tx", "trig", nil)
	if params, ok := mk("ANSWER", "200", ":tx", "...").Match(ans); !ok || params["tx"] != "tx" {
		t.Fatalf("ANSWER endpoint: %v %v", params, ok)
	}
}
