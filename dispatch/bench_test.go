package dispatch

import (
	"encoding/json"
	"strconv"
	"testing"
)

// A ~300-byte dispatch, typical of an application request.
var benchDispatch = []byte(`{"protocol":["JSTP","0.4"],"method":"POST","resource":["users",97,"orders"],"timestamp":1365647440759,"token":["6f1c1e36-8a4e-4f0e-9d55-1a0c7c7d1a2b","3434h5098asr34h3"],"host":["pizza.com.ar"],"body":{"item":"pizza","size":"large","toppings":["cheese","basil"],"note":"Let the cheese melt!"}}`)

// BenchmarkDecode decodes and validates; compare with
// BenchmarkDecodeBaselineMap, encoding/json into a map, which validates
// nothing.
func BenchmarkDecode(b *testing.B) {
	b.SetBytes(int64(len(benchDispatch)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(benchDispatch); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeBaselineMap(b *testing.B) {
	b.SetBytes(int64(len(benchDispatch)))
	b.ReportAllocs()
	for b.Loop() {
		var m map[string]any
		if err := json.Unmarshal(benchDispatch, &m); err != nil {
			b.Fatal(err)
		}
	}
}

// benchLargeDispatch carries a 64 KiB body of small objects, where the
// cost is validating and copying the body rather than reading headers.
var benchLargeDispatch = func() []byte {
	body := []byte(`[`)
	for i := 0; len(body) < 64<<10; i++ {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, `{"id":`...)
		body = strconv.AppendInt(body, int64(i), 10)
		body = append(body, `,"name":"topping \u00e9","price":1.25e1,"tags":["a","b"],"ok":true}`...)
	}
	body = append(body, ']')
	head := `{"protocol":["JSTP","0.4"],"method":"POST","resource":["users",97,"orders"],"timestamp":1365647440759,"token":["6f1c1e36-8a4e-4f0e-9d55-1a0c7c7d1a2b"],"host":["pizza.com.ar"],"body":`
	return append(append([]byte(head), body...), '}')
}()

func BenchmarkDecodeLargeBody(b *testing.B) {
	b.SetBytes(int64(len(benchLargeDispatch)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(benchLargeDispatch); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeLargeBodyBaselineMap(b *testing.B) {
	b.SetBytes(int64(len(benchLargeDispatch)))
	b.ReportAllocs()
	for b.Loop() {
		var m map[string]any
		if err := json.Unmarshal(benchLargeDispatch, &m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	d, _ := Decode(benchDispatch)
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = d.AppendJSON(buf[:0])
	}
}

func BenchmarkEncodeBaselineMap(b *testing.B) {
	var m map[string]any
	json.Unmarshal(benchDispatch, &m)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPatternMatch(b *testing.B) {
	p, _ := CompilePattern([]string{"path", "...", "text", "...", ":ext"})
	res := []string{"path", "folder", "internal", "text", "value", "txt"}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := p.Match(res); !ok {
			b.Fatal("no match")
		}
	}
}
