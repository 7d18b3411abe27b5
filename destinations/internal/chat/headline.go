package chat

import "github.com/rcrouter/rcrouter/internal/event"

// Emoji are the Unicode forms of the cats RevenueCat's Slack messages use,
// per tone, for chats that show Unicode emoji rather than :shortcodes:
// (Discord embeds, Teams cards).
var Emoji = map[Tone]string{
	Good:         "😺",
	Test:         "🧪",
	Refund:       "💸",
	BillingIssue: "🙀",
	Loss:         "😿",
	Transfer:     "🔄",
	Info:         "ℹ️",
}

// MarkdownHeadline is the first line of a message in CommonMark-like
// markdown (Discord, Teams): the emoji, a **bold** label for news someone
// should look at, and the phrase with event text rendered by st.
func MarkdownHeadline(e *event.Event, st Style) string {
	tone := ToneOf(e)
	label := ""
	if l := tone.Label(); l != "" {
		label = "**" + l + "** · "
	}
	return Emoji[tone] + " " + label + Phrase(e).Render(st)
}
