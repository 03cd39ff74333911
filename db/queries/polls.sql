-- Polls, their options, grants and the feed. Every right is decided by user_may(),
-- evaluated at the statement's transaction time; a NULL user_id is an anonymous caller.
-- Parameters carry explicit casts so that every statement prepares without arguments.

-- name: insert_poll
-- The counts version starts with the poll, so readers never find it missing.
WITH new_poll AS (
    INSERT INTO poll (question, creator_id, poll_perms, expires_at)
    VALUES (%(question)s::text, %(creator_id)s::bigint, %(poll_perms)s::poll_perms,
            %(expires_at)s::timestamptz)
    RETURNING id
), new_version AS (
    INSERT INTO poll_counts_version (poll_id, version)
    SELECT id, 0 FROM new_poll
)
SELECT id FROM new_poll

-- name: insert_options
-- Options keep the order given (position 0..n-1), each with its zero count.
WITH new_option AS (
    INSERT INTO vote_option (poll_id, position, text)
    SELECT %(poll_id)s::bigint, o.ordinality - 1, o.text
    FROM unnest(%(options)s::text[]) WITH ORDINALITY AS o (text, ordinality)
    RETURNING id, poll_id
)
INSERT INTO vote_count (vote_option_id, poll_id, vote_count)
SELECT id, poll_id, 0 FROM new_option

-- name: insert_grant
-- One grant from now on. user_id NULL is everyone, poll_id NULL is every poll.
-- Nothing is inserted (and nothing returned) for an unknown user or when an
-- identical grant overlaps.
INSERT INTO poll_grant (role, user_id, poll_id, granted_by, expires_at)
SELECT %(role)s::poll_role, %(user_id)s::bigint, %(poll_id)s::bigint,
       %(granted_by)s::bigint, %(expires_at)s::timestamptz
WHERE %(user_id)s::bigint IS NULL
   OR EXISTS (SELECT 1 FROM "user" WHERE id = %(user_id)s::bigint)
ON CONFLICT DO NOTHING
RETURNING id

-- name: grant_user_roles
-- Grants the pairs (roles[i], user_ids[i]) on one poll from now on and returns, in
-- request order, the user ids of the pairs that were not granted: unknown users and
-- users already holding that role. ON CONFLICT covers the no-overlap exclusion
-- constraint, so one duplicate never aborts the others.
WITH wanted AS (
    SELECT w.role, w.user_id, w.ordinality
    FROM unnest(%(roles)s::poll_role[], %(user_ids)s::bigint[])
         WITH ORDINALITY AS w (role, user_id, ordinality)
), granted AS (
    INSERT INTO poll_grant (role, user_id, poll_id, granted_by)
    SELECT DISTINCT w.role, w.user_id, %(poll_id)s::bigint, %(granted_by)s::bigint
    FROM wanted w
    JOIN "user" u ON u.id = w.user_id
    ON CONFLICT DO NOTHING
    RETURNING role, user_id
)
SELECT w.user_id
FROM wanted w
WHERE NOT EXISTS (SELECT 1 FROM granted g WHERE g.role = w.role AND g.user_id = w.user_id)
ORDER BY w.ordinality

-- name: poll_access
-- No row: the poll does not exist. The key-share lock keeps the poll from being
-- deleted until the caller's transaction ends, so later writes never miss it.
SELECT user_may(%(user_id)s::bigint, 'poll:view', p.id, now()) AS may_view,
       user_may(%(user_id)s::bigint, %(permission)s::poll_permission, p.id, now()) AS may_act
FROM poll p
WHERE p.id = %(poll_id)s::bigint
FOR KEY SHARE OF p

-- name: delete_poll
-- Options, grants, votes and counts go with it (foreign keys cascade).
DELETE FROM poll p
WHERE p.id = %(poll_id)s::bigint
  AND user_may(%(user_id)s::bigint, 'poll:delete', p.id, now())
RETURNING p.id

-- name: get_poll
-- The poll as the user sees it, with the user's current vote; no row when the user
-- may not view it.
SELECT p.id, p.question, p.expires_at, p.creator_name, p.options, p.option_ids,
       (SELECT v.vote_option_id FROM vote v
        WHERE v.poll_id = p.id AND v.user_id = %(user_id)s::bigint) AS user_vote
FROM poll_summary p
WHERE p.id = %(poll_id)s::bigint
  AND user_may(%(user_id)s::bigint, 'poll:view', p.id, now())

-- name: feed_page
-- Newest first, keyset-paginated on id: a page starts below `before` (NULL: at the
-- top), so polls created meanwhile never shift later pages. The options come in the
-- same statement, one row per poll.
SELECT p.id, p.question, p.expires_at, p.creator_name, p.options, p.option_ids
FROM poll_summary p
WHERE p.id < coalesce(%(before)s::bigint, 9223372036854775807)
  AND user_may(%(user_id)s::bigint, 'poll:view', p.id, now())
ORDER BY p.id DESC
LIMIT %(limit)s::integer

-- name: list_user_grants
-- Grants active now on this poll to named users; everyone-grants and global
-- (moderator) grants are not the poll's to list.
SELECT g.role::text AS role, u.username::text AS username, g.user_id
FROM poll_grant g
JOIN "user" u ON u.id = g.user_id
WHERE g.poll_id = %(poll_id)s::bigint
  AND g.granted_at <= now()
  AND (g.expires_at IS NULL OR g.expires_at > now())
ORDER BY g.id

-- name: delete_poll_as_staff
-- The admin's deletion: any poll, by an active staff member. Whether the actor still is
-- one is read from their row in the same statement, never from a cache. Options,
-- grants, votes and counts go with the poll (foreign keys cascade).
WITH staff AS (
    SELECT 1
    FROM "user"
    WHERE id = %(staff_id)s::bigint AND is_staff AND is_active
), deleted AS (
    DELETE FROM poll p
    WHERE p.id = %(poll_id)s::bigint
      AND EXISTS (SELECT 1 FROM staff)
    RETURNING p.id
)
SELECT EXISTS (SELECT 1 FROM staff) AS allowed, EXISTS (SELECT 1 FROM deleted) AS deleted

-- name: end_grants
-- Ends the listed grants that are in force: their period stops now, the rows stay as
-- history. Returns the ids of the grants it ended.
UPDATE poll_grant
SET expires_at = now()
WHERE id = ANY (%(grant_ids)s::bigint[])
  AND granted_at < now()
  AND (expires_at IS NULL OR expires_at > now())
RETURNING id

-- name: end_moderator_grants
-- Ends a user's global moderator grants that are in force; returns their ids.
UPDATE poll_grant
SET expires_at = now()
WHERE user_id = %(user_id)s::bigint
  AND poll_id IS NULL
  AND role = 'moderator'
  AND granted_at < now()
  AND (expires_at IS NULL OR expires_at > now())
RETURNING id
