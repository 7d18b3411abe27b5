package chat

import "strings"

// Markdown escapes event text for a markdown dialect by putting a backslash
// before the characters that would format, link or mention. Discord and
// Teams (Adaptive Card TextBlocks) both read CommonMark-like markdown and
// take a backslash before any punctuation as "show this character".
type Markdown struct {
	// Always are the characters escaped wherever they are.
	Always string
	// Leading are the characters that mean something only at the start of a
	// line (a heading, a list item, a quote). Escaped text never holds a
	// line break (OneLine), so only its first character can start one.
	// "1. " (a numbered list) is always recognised.
	Leading string
	// Replace maps a character to its replacement instead of a backslash
	// escape (Discord: @ followed by a zero-width space).
	Replace map[rune]string
}

// Escape returns s on one line, shown literally in the dialect.
func (m Markdown) Escape(s string) string {
	s = OneLine(s)
	var b strings.Builder
	for i, r := range s {
		if rep, ok := m.Replace[r]; ok {
			b.WriteString(rep)
			continue
		}
		if (r < 128 && strings.ContainsRune(m.Always, r)) ||
			(i == 0 && strings.ContainsRune(m.Leading, r)) ||
			(r == '.' && orderedListDot(s[:i], s[i+1:])) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// orderedListDot reports whether a dot between prefix and rest makes a
// numbered list item: digits, the dot, then a space or the end ("1. x").
func orderedListDot(prefix, rest string) bool {
	return prefix != "" && strings.Trim(prefix, "0123456789") == "" && (rest == "" || rest[0] == ' ')
}

// OneLine replaces line breaks and other control characters with spaces:
// a line break in event text would start a heading, a list or a quote.
func OneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
}
