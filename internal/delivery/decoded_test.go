package delivery

import (
	"errors"
	"fmt"
	"testing"

	"github.com/rcrouter/rcrouter/internal/event"
)

func TestDecodedEvents(t *testing.T) {
	type get struct {
		id, body string
		decodes  int  // decodes so far, after this get
		same     int  // index of an earlier get whose *event.Event this one returns; -1: none
		fails    bool // the decoder rejects this body
	}
	tests := []struct {
		name     string
		capacity int
		gets     []get
	}{
		{"each destination of an event shares one decode", 4, []get{
			{"e1", "a", 1, -1, false}, {"e1", "a", 1, 0, false}, {"e1", "a", 1, 0, false},
		}},
		{"another body under the same id is decoded, not trusted", 4, []get{
			{"e1", "a", 1, -1, false}, {"e1", "b", 2, -1, false}, {"e1", "b", 2, 1, false},
		}},
		{"oldest leaves first at capacity", 2, []get{
			{"e1", "a", 1, -1, false}, {"e2", "b", 2, -1, false}, {"e3", "c", 3, -1, false},
			{"e2", "b", 3, 1, false}, {"e1", "a", 4, -1, false},
		}},
		{"a body that fails is not kept", 4, []get{
			{"e1", "bad", 1, -1, true}, {"e1", "bad", 2, -1, true},
		}},
		{"no event id is never kept", 4, []get{
			{"", "a", 1, -1, false}, {"", "a", 2, -1, false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			decodes := 0
			c := newDecodedEvents(func(b []byte) (*event.Event, error) {
				decodes++
				if string(b) == "bad" {
					return nil, errors.New("bad body")
				}
				return &event.Event{ID: fmt.Sprint(decodes), Raw: append([]byte{}, b...)}, nil
			}, tt.capacity)
			var got []*event.Event
			for i, g := range tt.gets {
				ev, err := c.get(g.id, []byte(g.body))
				if (err != nil) != g.fails {
					t.Fatalf("get %d: err %v, want failure %v", i, err, g.fails)
				}
				if decodes != g.decodes {
					t.Errorf("get %d: %d decodes, want %d", i, decodes, g.decodes)
				}
				if g.same >= 0 && ev != got[g.same] {
					t.Errorf("get %d: another event than get %d's", i, g.same)
				}
				if g.same < 0 && !g.fails {
					for j, prev := range got {
						if prev == ev {
							t.Errorf("get %d: get %d's event, want a fresh decode", i, j)
						}
					}
				}
				if len(c.m) > tt.capacity || len(c.order) > tt.capacity {
					t.Errorf("get %d: %d entries kept (%d keys), capacity %d", i, len(c.m), len(c.order), tt.capacity)
				}
				got = append(got, ev)
			}
		})
	}
}
