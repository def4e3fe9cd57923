package sealpost

import (
	"sort"
	"testing"
	"time"
)

func TestURLSafeIDsSortByTime(t *testing.T) {
	var ids []string
	seen := map[string]bool{}
	for range 5 {
		for range 100 {
			id, err := newURLSafeID()
			if err != nil {
				t.Fatal(err)
			}
			if len(id) != 22 || !validMessageIDPart(id) {
				t.Fatalf("id %q: want 22 URL-safe base64 characters", id)
			}
			if seen[id] {
				t.Fatalf("id %q made twice", id)
			}
			seen[id] = true
			ids = append(ids, id)
		}
		time.Sleep(2 * time.Millisecond)
	}
	// Within one millisecond the random part orders them; across
	// milliseconds the time must.
	for i := 100; i < len(ids); i += 100 {
		if ids[i-100] >= ids[i] {
			t.Errorf("id %q made before %q sorts after it", ids[i-100], ids[i])
		}
	}
}

func TestSortableURLSafeKeepsByteOrder(t *testing.T) {
	var enc []string
	for i := range 256 {
		enc = append(enc, sortableURLSafe.EncodeToString([]byte{byte(i), 0, 0}))
	}
	if !sort.StringsAreSorted(enc) {
		t.Fatal("encodings of increasing bytes do not sort in order")
	}
}
