package app

import (
	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/destinations/amplitude"
	"github.com/rcrouter/rcrouter/destinations/discord"
	"github.com/rcrouter/rcrouter/destinations/file"
	"github.com/rcrouter/rcrouter/destinations/mixpanel"
	"github.com/rcrouter/rcrouter/destinations/posthog"
	"github.com/rcrouter/rcrouter/destinations/segment"
	"github.com/rcrouter/rcrouter/destinations/slack"
	"github.com/rcrouter/rcrouter/destinations/teams"
	"github.com/rcrouter/rcrouter/destinations/webhook"
)

// Types is the one list of destination types (STYLE rule 3: explicit, no
// init() registry). A new type is its own package plus one line here;
// config, `rcrouter validate`, the config dump and the admin API learn it
// from this list. The order is the order "add one of …" offers them.
func Types() destinations.Types {
	return destinations.Types{
		segment.Type(),
		amplitude.Type(),
		mixpanel.Type(),
		posthog.Type(),
		slack.Type(),
		discord.Type(),
		teams.Type(),
		webhook.Type(),
		file.Type(),
	}
}
