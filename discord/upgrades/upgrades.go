// Package upgrades holds the versioned schema of the Discord frontend's tables.
//
// The frontend shares the core's database but keeps its own version table
// (msnbridge_discord_version), so its schema upgrades independently. Every table name starts
// with "msn_discord_".
package upgrades

import (
	"embed"

	"go.mau.fi/util/dbutil"
)

//go:embed *.sql
var rawUpgrades embed.FS

// VersionTable is the frontend's schema version table.
const VersionTable = "msnbridge_discord_version"

// Table is the frontend's upgrade table. Append new numbered files; never edit one that has
// been released.
var Table = dbutil.BuildUpgradeTable().WithFS(rawUpgrades).Finish()
