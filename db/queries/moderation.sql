-- Reports of polls, and their resolution by moderators. Only the admin reads who
-- reported a poll: no statement here hands a reporter to anyone else.

-- name: lock_poll_for_report
-- No row: the poll does not exist. The lock makes reports of one poll wait for each
-- other, so that each counts the ones before it (auto-hide), and keeps the poll from
-- being deleted before the report is stored. Votes (key-share locks) are not blocked.
SELECT user_may(%(user_id)s::bigint, 'poll:view', p.id, now()) AS may_view
FROM poll p
WHERE p.id = %(poll_id)s::bigint
FOR NO KEY UPDATE OF p

-- name: insert_report
-- Nothing is returned when the user already has an open report on this poll.
INSERT INTO poll_report (poll_id, reporter_id, reason, note)
VALUES (%(poll_id)s::bigint, %(reporter_id)s::bigint, %(reason)s::report_reason,
        %(note)s::text)
ON CONFLICT (poll_id, reporter_id) WHERE resolved_at IS NULL DO NOTHING
RETURNING id

-- name: hide_if_reported
-- Hides the poll from the public once `threshold` users hold open reports on it
-- (one open report per user); returns its id only when this statement hid it.
UPDATE poll
SET hidden_at = now()
WHERE id = %(poll_id)s::bigint
  AND hidden_at IS NULL
  AND (SELECT count(*) FROM poll_report
       WHERE poll_id = %(poll_id)s::bigint AND resolved_at IS NULL) >= %(threshold)s::integer
RETURNING id

-- name: lock_active_staff
-- The actor's id when they are active staff, their row locked until the transaction
-- ends: a ban or demotion of the actor waits until their action is done.
SELECT id
FROM "user"
WHERE id = %(staff_id)s::bigint AND is_staff AND is_active
FOR SHARE

-- name: dismiss_reports
-- Resolves the open reports of these polls as dismissed; one row per poll that had any.
WITH resolved AS (
    UPDATE poll_report
    SET resolution = 'dismissed', resolved_by = %(staff_id)s::bigint, resolved_at = now()
    WHERE poll_id = ANY (%(poll_ids)s::bigint[]) AND resolved_at IS NULL
    RETURNING poll_id
)
SELECT poll_id, count(*)::integer AS reports
FROM resolved
GROUP BY poll_id
ORDER BY poll_id

-- name: unhide_polls
-- Shows hidden polls to the public again; the ids of those that were hidden.
UPDATE poll
SET hidden_at = NULL
WHERE id = ANY (%(poll_ids)s::bigint[]) AND hidden_at IS NOT NULL
RETURNING id

-- name: resolve_creator_reports
-- Resolves the open reports of every poll by this creator as creator_banned; one row
-- per poll that had any. Hidden polls stay hidden.
WITH resolved AS (
    UPDATE poll_report r
    SET resolution = 'creator_banned', resolved_by = %(staff_id)s::bigint, resolved_at = now()
    FROM poll p
    WHERE p.id = r.poll_id
      AND p.creator_id = %(creator_id)s::bigint
      AND r.resolved_at IS NULL
    RETURNING r.poll_id
)
SELECT poll_id, count(*)::integer AS reports
FROM resolved
GROUP BY poll_id
ORDER BY poll_id
