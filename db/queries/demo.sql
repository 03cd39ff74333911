-- Demo data (demo/seed.py): finding what an earlier `seed_demo` already made.

-- name: find_user
-- An account by its exact username.
SELECT id, username, email, is_active, is_staff
FROM "user"
WHERE username = %(username)s

-- name: find_poll
-- A poll by its creator and exact question (the demo's polls are unique on both).
SELECT id
FROM poll
WHERE creator_id = %(creator_id)s AND question = %(question)s
ORDER BY id
LIMIT 1

-- name: poll_options
-- A poll's option ids in presentation order.
SELECT array_agg(id ORDER BY position)
FROM vote_option
WHERE poll_id = %(poll_id)s

-- name: voted_polls
-- The polls among `poll_ids` on which the user's vote is already recorded.
SELECT array_agg(poll_id)
FROM vote
WHERE user_id = %(user_id)s AND poll_id = ANY(%(poll_ids)s::bigint[])

-- name: may_vote
-- Whether the user may vote on the poll now.
SELECT user_may(%(user_id)s, 'poll:vote', %(poll_id)s, now())
