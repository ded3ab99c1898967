// Package upgrades holds the versioned schema of the bridge core's tables.
//
// The core shares its database with bridgev2 but keeps its own version table
// (msnbridge_version, see bridge.VersionTable), so the two schemas upgrade
// independently. Every table name starts with "msn_" so none can clash with
// bridgev2's.
package upgrades

import (
	"embed"

	"go.mau.fi/util/dbutil"
)

//go:embed *.sql
var rawUpgrades embed.FS

// Table is the core's upgrade table. Append new numbered files; never edit
// one that has been released.
var Table = dbutil.BuildUpgradeTable().WithFS(rawUpgrades).Finish()
