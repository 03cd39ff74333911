-- migrate:up
-- A poll as every read shows it: the creator's name and the options in presentation
-- order, one row per poll. Plain SQL, so the planner inlines it into each query.
CREATE VIEW poll_summary AS
SELECT p.id, p.question, p.expires_at, p.creator_id, u.username::text AS creator_name,
       o.options, o.option_ids
FROM poll p
JOIN "user" u ON u.id = p.creator_id
CROSS JOIN LATERAL (
    SELECT coalesce(array_agg(vo.text ORDER BY vo.position), '{}') AS options,
           coalesce(array_agg(vo.id ORDER BY vo.position), '{}') AS option_ids
    FROM vote_option vo
    WHERE vo.poll_id = p.id
) o;

-- migrate:down
DROP VIEW poll_summary;
