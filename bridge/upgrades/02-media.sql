-- v1 -> v2: Media: the shared cache of MSN objects (display pictures, emoticons) by SHA1D, and
-- each account's own display picture
CREATE TABLE msn_object_cache (
	sha1d      TEXT   PRIMARY KEY,
	mime       TEXT   NOT NULL,
	data       bytea  NOT NULL,
	size       BIGINT NOT NULL,
	fetched_at BIGINT NOT NULL
);
CREATE INDEX msn_object_cache_fetched_idx ON msn_object_cache (fetched_at);

CREATE TABLE msn_own_avatar (
	handle     TEXT   PRIMARY KEY REFERENCES msn_account(handle) ON DELETE CASCADE,
	data       bytea  NOT NULL,
	updated_at BIGINT NOT NULL
);
