package dispatch

import (
	"encoding/json"
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
