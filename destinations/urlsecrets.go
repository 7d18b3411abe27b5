package destinations

import (
	"net/url"
	"slices"
	"strings"

	"github.com/rcrouter/rcrouter/internal/secret"
)

// minTokenSegment is the shortest last path segment treated as a token on
// its own: webhook tokens are long (Slack 24, Discord 68 characters), while
// short segments ("invoke", "v1") are common words that must stay readable.
const minTokenSegment = 20

// credentialParams are query parameters that carry a credential in webhook
// URLs (Teams Workflows and Azure Logic Apps sign with sig, Azure Functions
// use code).
var credentialParams = []string{"sig", "code", "token", "key", "secret"}

// URLSecrets are the forms in which a webhook URL that is itself the
// credential may be quoted back by a server or an error ("Cannot POST
// /api/webhooks/1/<token>"): the whole URL, its path escaped and not, its
// last path segment when it is token-sized, and the values of credential
// query parameters. The capturing Transport redacts all of them.
func URLSecrets(raw secret.Secret) []secret.Secret {
	out := []secret.Secret{raw}
	u, err := url.Parse(raw.Value())
	if err != nil {
		return out
	}
	if u.Path != "" && u.Path != "/" {
		out = append(out, secret.Secret(u.EscapedPath()), secret.Secret(u.Path))
		last := u.Path[strings.LastIndex(strings.TrimSuffix(u.Path, "/"), "/")+1:]
		if last = strings.Trim(last, "/"); len(last) >= minTokenSegment {
			out = append(out, secret.Secret(last))
		}
	}
	// Each credential value as written, decoded and re-encoded: a server may
	// quote any of them.
	for _, pair := range strings.Split(u.RawQuery, "&") {
		k, raw, _ := strings.Cut(pair, "=")
		if !slices.Contains(credentialParams, k) || raw == "" {
			continue
		}
		out = append(out, secret.Secret(raw))
		if v, err := url.QueryUnescape(raw); err == nil && v != raw {
			out = append(out, secret.Secret(v))
		}
	}
	return out
}
