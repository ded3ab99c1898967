//go:build tools

package deps

import (
	_ "github.com/bwmarrin/discordgo"
	_ "github.com/gorilla/websocket"
	_ "github.com/lib/pq"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/rs/zerolog"
	_ "go.mau.fi/util/dbutil"
	_ "gopkg.in/yaml.v3"
	_ "maunium.net/go/mautrix/bridgev2"
	_ "maunium.net/go/mautrix/bridgev2/matrix"
	_ "modernc.org/sqlite"
)
