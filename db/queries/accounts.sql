-- Users. Usernames and emails are citext: comparisons ignore letter case.

-- name: get_user_by_id
-- The user behind a session (cached per process by accounts.users); no row if unknown.
SELECT id, username::text AS username, email::text AS email, is_active, is_staff,
       session_generation
FROM "user"
WHERE id = %(user_id)s

-- name: get_session_user
-- A session's user, and whether that session was revoked (logged out).
SELECT id, username::text AS username, email::text AS email, is_active, is_staff,
       session_generation,
       EXISTS (
           SELECT 1 FROM revoked_session WHERE session_id = %(session_id)s::text
       ) AS session_revoked
FROM "user"
WHERE id = %(user_id)s::bigint

-- name: revoke_session
-- End one session until its token expires; sessions whose tokens expired are forgotten.
WITH forgotten AS (
    DELETE FROM revoked_session WHERE expires_at < now()
)
INSERT INTO revoked_session (session_id, user_id, expires_at)
VALUES (%(session_id)s::text, %(user_id)s::bigint, %(expires_at)s::timestamptz)
ON CONFLICT (session_id) DO NOTHING

-- name: end_all_sessions
-- Every session of the user ends: their tokens carry an older generation now.
UPDATE "user"
SET session_generation = session_generation + 1
WHERE id = %(user_id)s::bigint
RETURNING session_generation

-- name: create_user
-- Nothing is returned when the username or email is taken (in any letter case).
INSERT INTO "user" (username, email, password)
VALUES (%(username)s, %(email)s, %(password)s)
ON CONFLICT DO NOTHING
RETURNING id, username::text AS username, email::text AS email, is_active, is_staff,
          session_generation

-- name: get_credentials
-- The account a login names: by username, or by email (usernames cannot contain "@").
SELECT id, is_active, session_generation, password
FROM "user"
WHERE username = %(login)s::citext OR email = %(login)s::citext
ORDER BY username = %(login)s::citext DESC
LIMIT 1

-- name: find_taken
-- Which of a username and an email are already registered (in any letter case).
SELECT
    EXISTS (SELECT 1 FROM "user" WHERE username = %(username)s::citext) AS username_taken,
    EXISTS (SELECT 1 FROM "user" WHERE email = %(email)s::citext) AS email_taken

-- name: get_credentials_by_id
-- An account's password hash and flags (to check the current password on a change).
SELECT id, is_active, session_generation, password
FROM "user"
WHERE id = %(user_id)s::bigint

-- name: record_login
-- When the user last signed in.
UPDATE "user"
SET last_login = now()
WHERE id = %(user_id)s

-- name: set_password
-- `end_sessions` also ends every session (a change; not a rehash of the same password).
UPDATE "user"
SET password = %(password)s::text,
    session_generation = session_generation + CASE WHEN %(end_sessions)s::boolean THEN 1 ELSE 0 END
WHERE id = %(user_id)s::bigint
RETURNING session_generation

-- name: set_user_active
-- Returns the id only when the flag changed. A ban also ends every session for good:
-- lifting it later does not bring the old tokens back.
UPDATE "user"
SET is_active = %(is_active)s::boolean,
    session_generation = session_generation + CASE WHEN %(is_active)s::boolean THEN 0 ELSE 1 END
WHERE id = %(user_id)s::bigint AND is_active IS DISTINCT FROM %(is_active)s::boolean
RETURNING id

-- name: set_user_staff
-- The admin flags; returns the id only when one of them changed.
UPDATE "user"
SET is_staff = %(is_staff)s::boolean, is_superuser = %(is_superuser)s::boolean
WHERE id = %(user_id)s::bigint
  AND (is_staff, is_superuser) IS DISTINCT FROM (%(is_staff)s::boolean, %(is_superuser)s::boolean)
RETURNING id
