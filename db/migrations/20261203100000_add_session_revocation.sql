-- migrate:up
-- Server-side revocation of session tokens (accounts.users.get_session_user).
-- A token carries its user's generation from when the session began: bumping it (log out
-- everywhere, password change, ban) ends every session of the user at once.
ALTER TABLE "user" ADD COLUMN session_generation integer NOT NULL DEFAULT 0;

-- One session ended before its token expired (log out). Rows are useless once the token
-- has expired, and are deleted then (see db/queries/accounts.sql, revoke_session).
CREATE TABLE revoked_session (
    session_id text        PRIMARY KEY,
    user_id    bigint      NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    CONSTRAINT revoked_session_id_format CHECK (session_id ~ '^[0-9a-f]{32}$')
);
CREATE INDEX revoked_session_expires_at ON revoked_session (expires_at);
CREATE INDEX revoked_session_user_id ON revoked_session (user_id);

-- migrate:down
DROP TABLE revoked_session;
ALTER TABLE "user" DROP COLUMN session_generation;
