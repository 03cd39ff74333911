-- Votes: the submission check (web) and the batch application (consumer).

-- name: check_vote
-- Everything POST /api/vote/submit needs, in one round trip.
SELECT
    user_may(%(user_id)s, 'poll:vote', %(poll_id)s, now()) AS may_vote,
    EXISTS (
        SELECT 1 FROM vote_option WHERE id = %(vote_option_id)s AND poll_id = %(poll_id)s
    ) AS option_in_poll,
    coalesce((SELECT expires_at <= now() FROM poll WHERE id = %(poll_id)s), false) AS expired

-- name: may_view_poll
-- Whether the user (NULL: anonymous) may view the poll now (false when there is none).
SELECT user_may(%(user_id)s, 'poll:view', %(poll_id)s, now())

-- name: claim_partitions
-- Creates the partitions' offset rows if needed and locks them for this transaction (in
-- partition order, so consumers never deadlock), so two consumers that briefly share a
-- partition during a rebalance apply each record once.
INSERT INTO consumer_offset AS o (consumer_group, topic, partition, last_offset)
SELECT %(consumer_group)s, %(topic)s, p, -1
FROM unnest(%(partitions)s::integer[]) AS p
ORDER BY p
ON CONFLICT (consumer_group, topic, partition)
    DO UPDATE SET last_offset = o.last_offset
RETURNING partition, last_offset

-- name: lock_polls
-- Takes the batch's polls before any vote or count row, in id order, FOR KEY SHARE (what
-- the votes' foreign keys take anyway). Deleting a poll locks its row before the cascade
-- reaches vote and vote_count, so both take the poll first: no deadlock between them.
-- A deleted poll is simply not returned.
SELECT id
FROM poll
WHERE id = ANY(%(poll_ids)s::bigint[])
ORDER BY id
FOR KEY SHARE

-- name: store_offsets
-- Records each partition's last applied offset, in the batch's transaction (the rows are
-- claimed and locked by claim_partitions first).
UPDATE consumer_offset AS o
SET last_offset = v.last_offset, updated_at = now()
FROM unnest(%(partitions)s::integer[], %(last_offsets)s::bigint[]) AS v (partition, last_offset)
WHERE o.consumer_group = %(consumer_group)s
  AND o.topic = %(topic)s
  AND o.partition = v.partition

-- name: stored_offsets
-- The last applied offset per partition, where a (re)assigned consumer continues from.
SELECT partition, last_offset
FROM consumer_offset
WHERE consumer_group = %(consumer_group)s AND topic = %(topic)s

-- name: apply_votes
-- Applies votes (at most one per poll and user) and changes the counts by exact deltas.
-- Votes whose poll, option or user no longer exists are left out; `applied` says how
-- many were applicable and `touched_polls` which polls' counts changed.
WITH incoming AS (
    -- Binary parameters (the `b` placeholders): dumping five long arrays as text was a large share
    -- of the batch's time.
    SELECT *
    FROM unnest(
        %(poll_ids)b::bigint[], %(user_ids)b::bigint[], %(vote_option_ids)b::bigint[],
        %(event_ids)b::uuid[], %(submitted_at)b::timestamptz[]
    ) AS t (poll_id, user_id, vote_option_id, event_id, submitted_at)
),
valid AS (
    SELECT i.*
    FROM incoming i
    JOIN vote_option o ON o.id = i.vote_option_id AND o.poll_id = i.poll_id
    JOIN "user" u ON u.id = i.user_id
),
changed AS (
    INSERT INTO vote AS v (poll_id, user_id, vote_option_id, event_id, submitted_at)
    SELECT poll_id, user_id, vote_option_id, event_id, submitted_at FROM valid
    ON CONFLICT (poll_id, user_id) DO UPDATE
        SET vote_option_id = excluded.vote_option_id,
            event_id = excluded.event_id,
            submitted_at = excluded.submitted_at,
            applied_at = now()
        WHERE v.vote_option_id <> excluded.vote_option_id
    -- The replaced vote's option (PostgreSQL 18's RETURNING old), NULL for a new vote:
    -- no second look-up of the old votes.
    RETURNING new.vote_option_id AS new_option, old.vote_option_id AS old_option
),
deltas AS (
    SELECT new_option AS vote_option_id, 1 AS delta FROM changed
    UNION ALL
    SELECT old_option, -1 FROM changed WHERE old_option IS NOT NULL
),
counted AS (
    -- An UPDATE, not an upsert: PostgreSQL checks vote_count >= 0 on a proposed insert
    -- row before ON CONFLICT, and every option gets its counts row when it is created.
    UPDATE vote_count c
    SET vote_count = c.vote_count + d.delta
    FROM (
        SELECT vote_option_id, sum(delta) AS delta
        FROM deltas
        GROUP BY vote_option_id
        HAVING sum(delta) <> 0
    ) d
    WHERE c.vote_option_id = d.vote_option_id
    RETURNING c.poll_id
)
SELECT
    (SELECT count(*) FROM valid) AS applied,
    array(SELECT DISTINCT poll_id FROM counted ORDER BY poll_id) AS touched_polls

-- name: bump_versions
-- A new counts version for each touched poll (one whose counts changed, so it has counts
-- rows), with its total votes summed again from its counts in this transaction (the
-- admin shows and sorts polls by it, and it never drifts from the counts); returns each
-- poll's absolute counts at that version, as poll_counts does. One statement that reads
-- the counts once, instead of a bump and a second read.
WITH counts AS (
    SELECT
        o.poll_id,
        array_agg(o.id ORDER BY o.position) AS option_ids,
        array_agg(coalesce(c.vote_count, 0) ORDER BY o.position) AS vote_counts,
        coalesce(sum(c.vote_count), 0) AS total_votes
    FROM vote_option o
    LEFT JOIN vote_count c ON c.vote_option_id = o.id
    WHERE o.poll_id = ANY(%(poll_ids)s::bigint[])
    GROUP BY o.poll_id
),
bumped AS (
    INSERT INTO poll_counts_version AS v (poll_id, version, total_votes)
    SELECT poll_id, 1, total_votes FROM counts
    ON CONFLICT (poll_id) DO UPDATE SET version = v.version + 1, total_votes = excluded.total_votes
    RETURNING v.poll_id, v.version
)
SELECT c.poll_id, b.version, c.option_ids, c.vote_counts
FROM counts c
JOIN bumped b USING (poll_id)
ORDER BY c.poll_id

-- name: poll_counts
-- Absolute counts in presentation order (zeros included) and the counts version.
SELECT
    o.poll_id,
    coalesce(max(v.version), 0) AS version,
    array_agg(o.id ORDER BY o.position) AS option_ids,
    array_agg(coalesce(c.vote_count, 0) ORDER BY o.position) AS vote_counts
FROM vote_option o
LEFT JOIN vote_count c ON c.vote_option_id = o.id
LEFT JOIN poll_counts_version v ON v.poll_id = o.poll_id
WHERE o.poll_id = ANY(%(poll_ids)s::bigint[])
GROUP BY o.poll_id

-- name: votes_per_minute
-- A poll's recorded votes counted by the minute they were cast, for the last `minutes`
-- minutes up to now (oldest first, zeros included), and the start of the newest minute.
-- A changed vote counts once, at the time of its latest change.
WITH recent AS (
    SELECT date_trunc('minute', submitted_at) AS minute, count(*) AS votes
    FROM vote
    WHERE poll_id = %(poll_id)s
      AND submitted_at >= date_trunc('minute', now()) - make_interval(mins => %(minutes)s - 1)
    GROUP BY 1
),
minutes AS (
    SELECT generate_series(
        date_trunc('minute', now()) - make_interval(mins => %(minutes)s - 1),
        date_trunc('minute', now()),
        interval '1 minute'
    ) AS minute
)
SELECT
    array_agg(coalesce(r.votes, 0)::integer ORDER BY m.minute) AS per_minute,
    max(m.minute) AS last_minute
FROM minutes m
LEFT JOIN recent r USING (minute)
