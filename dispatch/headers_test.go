package dispatch

import (
	"encoding/json"
	"slices"
	"testing"
)

func namesOf(h Headers) []string {
	var out []string
	for _, x := range h {
		out = append(out, x.Name)
	}
	return out
}

func TestHeadersStaySortedAndUnshared(t *testing.T) {
	var h Headers
	h.Set("via", json.RawMessage(`"a"`))
	h.Set("hops", json.RawMessage(`1`))
	h.Set("x", json.RawMessage(`true`))
	if got := namesOf(h); !slices.Equal(got, []string{"hops", "via", "x"}) {
		t.Fatalf("names %v, want sorted", got)
	}
	d := &Dispatch{Extra: h}
	c := *d // shares Extra, as copies of dispatches do
	c.Extra.Set("hops", json.RawMessage(`2`))
	c.Extra.Delete("via")
	c.Extra.Set("a", json.RawMessage(`0`))
	if got := string(d.Extra.Value("hops")); got != "1" {
		t.Fatalf("the copy's Set changed the original: hops %s", got)
	}
	if got := namesOf(d.Extra); !slices.Equal(got, []string{"hops", "via", "x"}) {
		t.Fatalf("the copy's Delete and Set changed the original: %v", got)
	}
	if got := namesOf(c.Extra); !slices.Equal(got, []string{"a", "hops", "x"}) {
		t.Fatalf("copy %v", got)
	}
	if v, ok := c.Extra.Get("via"); ok || v != nil {
		t.Fatalf("deleted header still there: %s", v)
	}
	for _, name := range []string{"a", "hops", "x"} {
		c.Extra.Delete(name)
	}
	if c.Extra != nil {
		t.Fatalf("emptied headers are %v, want nil", c.Extra)
	}
	if c.Extra.Delete("none") {
		t.Fatal("Delete of a missing header reported it present")
	}
}

// Unknown headers are written sorted by name whatever order they came
// in, and a repeated one is refused.
func TestDecodeUnknownHeaders(t *testing.T) {
	d, err := Decode([]byte(`{"protocol":["JSTP","0.4"],"method":"GET","resource":["a"],"timestamp":1,"z":1,"via":"x","hops":2}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := namesOf(d.Extra); !slices.Equal(got, []string{"hops", "via", "z"}) {
		t.Fatalf("names %v", got)
	}
	want := `{"protocol":["JSTP","0.4"],"method":"GET","resource":["a"],"timestamp":1,"hops":2,"via":"x","z":1}`
	if got := string(d.AppendJSON(nil)); got != want {
		t.Fatalf("encoded\n%s\nwant\n%s", got, want)
	}
	if _, err := Decode([]byte(`{"protocol":["JSTP","0.4"],"method":"GET","resource":["a"],"timestamp":1,"z":1,"z":2}`)); err == nil {
		t.Fatal("a repeated header was accepted")
	}
}
