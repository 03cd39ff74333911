-- Users. Usernames and emails are citext: comparisons ignore letter case.

-- name: get_user_by_id
SELECT id, username::text AS username, email::text AS email, is_active, is_staff
FROM "user"
WHERE id = %(user_id)s

-- name: create_user
-- Nothing is returned when the username or email is taken (in any letter case).
INSERT INTO "user" (username, email, password)
VALUES (%(username)s, %(email)s, %(password)s)
ON CONFLICT DO NOTHING
RETURNING id, username::text AS username, email::text AS email, is_active, is_staff
