package chat

import "testing"

func TestMarkdownEscape(t *testing.T) {
	m := Markdown{Always: `\*[]`, Leading: "#-", Replace: map[rune]string{'@': "(at)"}}
	tests := []struct{ name, in, want string }{
		{"always", `*b* [x] \`, `\*b\* \[x\] \\`},
		{"leading only at the start", "# a # b - c", `\# a # b - c`},
		{"leading dash", "-4.99", `\-4.99`},
		{"numbered list", "12. item", `12\. item`},
		{"a decimal is no list", "9.99 EUR", "9.99 EUR"},
		{"a bare number and dot", "3.", `3\.`},
		{"replaced", "@everyone", "(at)everyone"},
		{"line breaks become spaces", "a\n# b\r\tc\u2028d", "a # b  c d"},
		{"non-ASCII untouched", "Café ✓", "Café ✓"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := m.Escape(tt.in); got != tt.want {
				t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
