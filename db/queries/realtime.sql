-- Live streams: whether their viewers may still watch (realtime.access).

-- name: viewers_still_allowed
-- Of one poll's viewers, those who may still watch it now: each signed-in viewer's
-- session still holds (user active, same session generation, not logged out) and the
-- user may view the poll; and anonymous viewers (user_id NULL) while anyone may view it.
SELECT v.user_id, v.session_id
FROM unnest(
    %(user_ids)s::bigint[], %(session_ids)s::text[], %(generations)s::integer[]
) AS v(user_id, session_id, generation)
JOIN "user" u ON u.id = v.user_id
WHERE u.is_active
  AND u.session_generation = v.generation
  AND NOT EXISTS (SELECT 1 FROM revoked_session r WHERE r.session_id = v.session_id)
  AND user_may(v.user_id, 'poll:view', %(poll_id)s::bigint, now())
UNION ALL
SELECT NULL, NULL
WHERE %(anonymous)s::boolean AND user_may(NULL, 'poll:view', %(poll_id)s::bigint, now())
