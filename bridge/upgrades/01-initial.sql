-- v0 -> v1: Accounts, encrypted credentials, frontend links and link codes
CREATE TABLE msn_account (
	handle         TEXT    PRIMARY KEY,
	created_at     BIGINT  NOT NULL,
	desired_status TEXT    NOT NULL DEFAULT 'NLN',
	psm            TEXT    NOT NULL DEFAULT '',
	friendly_name  TEXT    NOT NULL DEFAULT '',
	-- logged_in: the owner wants this account connected; Start logs it back in.
	logged_in      BOOLEAN NOT NULL DEFAULT false,
	state          TEXT    NOT NULL DEFAULT '',
	last_error     TEXT    NOT NULL DEFAULT ''
);

CREATE TABLE msn_credential (
	handle     TEXT  PRIMARY KEY REFERENCES msn_account(handle) ON DELETE CASCADE,
	nonce      bytea NOT NULL,
	ciphertext bytea NOT NULL
);

CREATE TABLE msn_frontend_link (
	frontend   TEXT   NOT NULL,
	user_id    TEXT   NOT NULL,
	handle     TEXT   NOT NULL REFERENCES msn_account(handle) ON DELETE CASCADE,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (frontend, user_id, handle),
	-- one owner per MSN account on each frontend
	CONSTRAINT msn_frontend_link_handle_uniq UNIQUE (frontend, handle)
);
CREATE INDEX msn_frontend_link_handle_idx ON msn_frontend_link (handle);

CREATE TABLE msn_link_code (
	code_hash  bytea  PRIMARY KEY,
	handle     TEXT   NOT NULL REFERENCES msn_account(handle) ON DELETE CASCADE,
	issuer_frontend TEXT NOT NULL,
	issuer_user_id  TEXT NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE INDEX msn_link_code_handle_idx ON msn_link_code (handle);
