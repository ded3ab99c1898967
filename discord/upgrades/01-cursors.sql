-- v0 -> v1: The newest message handled per mirrored channel, where a catch-up starts
CREATE TABLE msn_discord_cursor (
	channel_id TEXT PRIMARY KEY,
	message_id TEXT NOT NULL
);
