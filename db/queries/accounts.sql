-- Users. Usernames and emails are citext: comparisons ignore letter case.

-- name: get_user_by_id
-- The user behind a session (cached per process by accounts.users); no row if unknown.
SELECT id, username::text AS username, email::text AS email, is_active, is_staff
FROM "user"
WHERE id = %(user_id)s

-- name: create_user
-- Nothing is returned when the username or email is taken (in any letter case).
INSERT INTO "user" (username, email, password)
VALUES (%(username)s, %(email)s, %(password)s)
ON CONFLICT DO NOTHING
RETURNING id, username::text AS username, email::text AS email, is_active, is_staff

-- name: get_credentials
-- The account a login names: by username, or by email (usernames cannot contain "@").
SELECT id, is_active, password
FROM "user"
WHERE username = %(login)s::citext OR email = %(login)s::citext
ORDER BY username = %(login)s::citext DESC
LIMIT 1

-- name: find_taken
-- Which of a username and an email are already registered (in any letter case).
SELECT
    EXISTS (SELECT 1 FROM "user" WHERE username = %(username)s::citext) AS username_taken,
    EXISTS (SELECT 1 FROM "user" WHERE email = %(email)s::citext) AS email_taken

-- name: record_login
-- A NULL password keeps the stored hash; a new one replaces a hash made with old parameters.
UPDATE "user"
SET last_login = now(), password = coalesce(%(password)s, password)
WHERE id = %(user_id)s

-- name: set_user_active
-- Returns the id only when the flag changed.
UPDATE "user"
SET is_active = %(is_active)s
WHERE id = %(user_id)s AND is_active IS DISTINCT FROM %(is_active)s
RETURNING id

-- name: set_user_staff
-- The admin flags; returns the id only when one of them changed.
UPDATE "user"
SET is_staff = %(is_staff)s::boolean, is_superuser = %(is_superuser)s::boolean
WHERE id = %(user_id)s::bigint
  AND (is_staff, is_superuser) IS DISTINCT FROM (%(is_staff)s::boolean, %(is_superuser)s::boolean)
RETURNING id
