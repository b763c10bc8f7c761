package event

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// catObject's fast path must answer exactly as encoding/json's decoder does: the same members,
// the same values, the same errors.
func FuzzCatObject(f *testing.F) {
	for _, seed := range []string{
		`{}`, ` { } `, `{"type":"job.progress","data":{"job_id":"x","percent":40}}`,
		`{"a":1,"b":-1.5e+10,"c":true,"d":false,"e":null,"f":"s","g":[1,{"h":"]}"}],"i":{}}`,
		`{"k\"ey":"v\\","\u0074ype":1}`, `{"é":1}`, "{\"\xff\":1}", `{"a":1,"a":2}`,
		`{"a":1}x`, `{"a":1} {}`, `[1,2]`, `"s"`, `1`, ``, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`,
		"\t{\"a\" :\n[ ] , \"b\":\"\\u00e9\"}\r\n", `{"a":"}"}`, `{"a":"\""}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, gotErr := catObject(raw, "data")
		want, wantErr := catObjectDecoded(raw, "data")
		if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
			t.Fatalf("%q: error %v, the decoder's %v", raw, gotErr, wantErr)
		}
		if len(got) != len(want) {
			t.Fatalf("%q: %d members, the decoder's %d", raw, len(got), len(want))
		}
		for i := range want {
			if got[i].key != want[i].key || !bytes.Equal(got[i].val, want[i].val) {
				t.Fatalf("%q: member %d %q=%s, the decoder's %q=%s", raw, i, got[i].key, got[i].val, want[i].key, want[i].val)
			}
		}
	})
}

// More than 16 members take the map to find a duplicate, and name the same one.
func TestCatObjectManyMembersDuplicate(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	b.WriteString(`{`)
	for i := range 40 {
		b.WriteString(`"k` + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `":1,`)
	}
	b.WriteString(`"kba":2}`) // repeats the second member's key, past the 16 compared pairwise
	_, err := catObject(b.Bytes(), "data")
	_, want := catObjectDecoded(b.Bytes(), "data")
	if err == nil || want == nil || err.Error() != want.Error() {
		t.Fatalf("error %v, the decoder's %v", err, want)
	}
}

// decodeStrict's scan must decode exactly as its decoder path: the same values, the same errors
// (fields included), at any nesting.
func FuzzDecodeStrict(f *testing.F) {
	for _, seed := range []string{
		`{}`, `[]`, `1`, `-0.5e3`, `"s"`, `"\u00e9\n"`, "\"\xff\"", `true`, `null`,
		`{"a":[1,{"b":"]","c":[[],{}]}],"d":{"e":false}}`, `{"a":1,"a":2}`, `{"x":[{"y":1,"y":2}]}`,
		strings.Repeat(`[`, 70) + strings.Repeat(`]`, 70), strings.Repeat(`{"a":`, 70) + `1` + strings.Repeat(`}`, 70),
		`{"a":1} x`, ` [1 , 2 ] `, `{"a":}`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, gotErr := decodeStrict(raw)
		want, wantErr := decodeStrictDecoded(raw)
		if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && (gotErr.Error() != wantErr.Error() || gotErr.Field != wantErr.Field)) {
			t.Fatalf("%q: error %v, the decoder's %v", raw, gotErr, wantErr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: %#v, the decoder's %#v", raw, got, want)
		}
	})
}
