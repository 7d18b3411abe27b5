// Package id makes the identifiers of rows rcrouter creates (deliveries,
// dispatch records): 26-character strings that sort by creation time.
//
// An id is 128 bits written in Crockford base32 (upper case, no I, L, O, U):
// a 48-bit Unix millisecond timestamp followed by 80 random bits. Ids from one
// Generator are strictly increasing, even within one millisecond, so a list
// ordered by id is ordered by creation.
package id

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Len is the length of every id.
const Len = 26

const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// maxMs is the largest timestamp 48 bits hold (year 10889).
const maxMs = 1<<48 - 1

// ErrInvalid is returned by Time for a string that is not an id.
var ErrInvalid = errors.New("invalid id")

// Generator makes ids. It is safe for concurrent use.
type Generator struct {
	now  func() time.Time
	rand io.Reader

	mu     sync.Mutex
	lastMs int64
	last   [10]byte // random part of the last id
}

// NewGenerator returns a Generator reading the clock from now and randomness
// from r; nil means time.Now and crypto/rand.
func NewGenerator(now func() time.Time, r io.Reader) *Generator {
	if now == nil {
		now = time.Now
	}
	if r == nil {
		r = rand.Reader
	}
	return &Generator{now: now, rand: r}
}

// New returns a new id. It panics only when the random source fails, which
// crypto/rand never does.
func (g *Generator) New() string {
	ms := g.now().UnixMilli()
	if ms < 0 {
		ms = 0
	}
	if ms > maxMs {
		ms = maxMs
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	if ms <= g.lastMs {
		// Same millisecond, or the clock stepped back: keep the last
		// timestamp and count up, so ids stay strictly increasing.
		ms = g.lastMs
		if !increment(&g.last) {
			// 2^80 ids in one millisecond cannot happen; if it did,
			// borrowing the next millisecond keeps the order.
			ms++
			g.fill()
		}
	} else {
		g.fill()
	}
	g.lastMs = ms
	return encode(ms, g.last)
}

func (g *Generator) fill() {
	if _, err := io.ReadFull(g.rand, g.last[:]); err != nil {
		panic(fmt.Sprintf("id: reading randomness: %v", err))
	}
}

// increment adds one to b as a big-endian number; false on overflow.
func increment(b *[10]byte) bool {
	for i := len(b) - 1; i >= 0; i-- {
		b[i]++
		if b[i] != 0 {
			return true
		}
	}
	return false
}

// encode writes the 128 bits ms(48) | random(80) as 26 base32 digits; the
// first digit carries the top 3 bits (the 130-bit frame has 2 leading zeros).
func encode(ms int64, r [10]byte) string {
	hi := uint64(ms)<<16 | uint64(r[0])<<8 | uint64(r[1])
	var lo uint64
	for _, c := range r[2:] {
		lo = lo<<8 | uint64(c)
	}
	var out [Len]byte
	for i := Len - 1; i >= 0; i-- {
		out[i] = alphabet[lo&31]
		// Shift the 128-bit value hi:lo right by 5.
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// Time returns the creation time an id carries, to the millisecond, in UTC.
func Time(s string) (time.Time, error) {
	if len(s) != Len {
		return time.Time{}, fmt.Errorf("%w %q: length %d, want %d", ErrInvalid, s, len(s), Len)
	}
	var hi, lo uint64
	for i := 0; i < Len; i++ {
		v := decodeDigit(s[i])
		if v < 0 {
			return time.Time{}, fmt.Errorf("%w %q: bad character %q", ErrInvalid, s, s[i])
		}
		if i == 0 && v > 7 {
			return time.Time{}, fmt.Errorf("%w %q: overflows 128 bits", ErrInvalid, s)
		}
		// Shift hi:lo left by 5 and add v.
		hi = hi<<5 | lo>>59
		lo = lo<<5 | uint64(v)
	}
	return time.UnixMilli(int64(hi >> 16)).UTC(), nil
}

func decodeDigit(c byte) int {
	if c >= 'a' && c <= 'z' {
		c -= 'a' - 'A'
	}
	for i := 0; i < len(alphabet); i++ {
		if alphabet[i] == c {
			return i
		}
	}
	return -1
}
