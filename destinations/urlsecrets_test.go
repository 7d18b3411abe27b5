package destinations

import (
	"reflect"
	"testing"

	"github.com/rcrouter/rcrouter/internal/secret"
)

func TestURLSecrets(t *testing.T) {
	tests := []struct {
		name string
		url  string
		want []secret.Secret
	}{
		{"discord webhook: the token segment", "https://discord.com/api/webhooks/123/abcdefghijklmnopqrstuvwxyz",
			[]secret.Secret{"https://discord.com/api/webhooks/123/abcdefghijklmnopqrstuvwxyz", "/api/webhooks/123/abcdefghijklmnopqrstuvwxyz",
				"/api/webhooks/123/abcdefghijklmnopqrstuvwxyz", "abcdefghijklmnopqrstuvwxyz"}},
		{"escaped path", "https://h.example/a%20b/0123456789abcdefghij/",
			[]secret.Secret{"https://h.example/a%20b/0123456789abcdefghij/", "/a%20b/0123456789abcdefghij/", "/a b/0123456789abcdefghij/", "0123456789abcdefghij"}},
		{"workflows: sig, not the short words", "https://prod-1.westus.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=S1g+Value/x",
			[]secret.Secret{"https://prod-1.westus.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=S1g+Value/x",
				"/workflows/abc/triggers/manual/paths/invoke", "/workflows/abc/triggers/manual/paths/invoke", "S1g+Value/x", "S1g Value/x"}},
		{"no path", "https://h.example", []secret.Secret{"https://h.example"}},
		{"not a URL", "%zz", []secret.Secret{"%zz"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := URLSecrets(secret.Secret(tt.url)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("URLSecrets =\n%q\nwant\n%q", values(got), values(tt.want))
			}
		})
	}
}

func values(s []secret.Secret) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = v.Value()
	}
	return out
}
