-- migrate:up
CREATE TYPE report_reason AS ENUM ('spam', 'abuse', 'illegal', 'other');
CREATE TYPE report_resolution AS ENUM ('dismissed', 'creator_banned');

-- A user's report that a poll breaks the rules. It stays open (resolved_at NULL) until
-- a moderator dismisses it or bans the poll's creator. Deleting the poll deletes its
-- reports, as it deletes its options, grants and votes; the admin log keeps what the
-- moderator decided and why.
CREATE TABLE poll_report (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    poll_id     bigint            NOT NULL REFERENCES poll (id) ON DELETE CASCADE,
    reporter_id bigint            NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    reason      report_reason     NOT NULL,
    note        text,
    created_at  timestamptz       NOT NULL DEFAULT now(),
    resolution  report_resolution,
    resolved_by bigint            REFERENCES "user" (id) ON DELETE SET NULL,
    resolved_at timestamptz,
    CONSTRAINT poll_report_note_length CHECK (char_length(note) BETWEEN 1 AND 500),
    CONSTRAINT poll_report_resolved CHECK ((resolution IS NULL) = (resolved_at IS NULL))
);
-- One open report per poll and user; once resolved, the user may report the poll again.
CREATE UNIQUE INDEX poll_report_open_key ON poll_report (poll_id, reporter_id)
    WHERE resolved_at IS NULL;
-- A poll's reports, open or resolved (its page, the cascade of its deletion).
CREATE INDEX poll_report_poll_id_idx ON poll_report (poll_id, id);
CREATE INDEX poll_report_reporter_id_idx ON poll_report (reporter_id, id);
CREATE INDEX poll_report_resolved_by_idx ON poll_report (resolved_by)
    WHERE resolved_by IS NOT NULL;
-- The review queue: open reports only, grouped by poll, newest first.
CREATE INDEX poll_report_open_idx ON poll_report (poll_id, created_at, reason)
    WHERE resolved_at IS NULL;

-- The review queue: one row per poll with open reports, counted by reason. The
-- aggregate comes first and the queue joins polls and users only for the page it shows.
CREATE VIEW poll_report_queue AS
SELECT poll_id,
       count(*) AS open_reports,
       count(*) FILTER (WHERE reason = 'spam') AS open_spam,
       count(*) FILTER (WHERE reason = 'abuse') AS open_abuse,
       count(*) FILTER (WHERE reason = 'illegal') AS open_illegal,
       count(*) FILTER (WHERE reason = 'other') AS open_other,
       min(created_at) AS first_reported,
       max(created_at) AS last_reported
FROM poll_report
WHERE resolved_at IS NULL
GROUP BY poll_id;

-- Set while a poll is hidden from the public because enough users reported it
-- (REPORTS_AUTOHIDE_THRESHOLD); cleared when a moderator dismisses the reports.
ALTER TABLE poll ADD COLUMN hidden_at timestamptz;
CREATE INDEX poll_hidden_idx ON poll (id) WHERE hidden_at IS NOT NULL;

-- As before, except that grants to everyone (public polls) give nothing on a hidden
-- poll: it leaves the public feed and anonymous view, while its creator, the users it
-- was shared with and moderators keep their rights.
CREATE OR REPLACE FUNCTION user_may(
    p_user_id bigint, p_permission poll_permission, p_poll_id bigint, p_at timestamptz
) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT EXISTS (
        SELECT 1
        FROM poll_grant g
        JOIN role_permission rp ON rp.role = g.role AND rp.permission = p_permission
        WHERE (g.poll_id = p_poll_id
               OR (g.poll_id IS NULL AND EXISTS (SELECT 1 FROM poll WHERE id = p_poll_id)))
          AND (g.user_id = p_user_id
               OR (g.user_id IS NULL
                   AND NOT EXISTS (
                       SELECT 1 FROM poll WHERE id = p_poll_id AND hidden_at IS NOT NULL
                   )))
          AND g.granted_at <= p_at
          AND (g.expires_at IS NULL OR g.expires_at > p_at)
    )
$$;

-- migrate:down
CREATE OR REPLACE FUNCTION user_may(
    p_user_id bigint, p_permission poll_permission, p_poll_id bigint, p_at timestamptz
) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT EXISTS (
        SELECT 1
        FROM poll_grant g
        JOIN role_permission rp ON rp.role = g.role AND rp.permission = p_permission
        WHERE (g.poll_id = p_poll_id
               OR (g.poll_id IS NULL AND EXISTS (SELECT 1 FROM poll WHERE id = p_poll_id)))
          AND (g.user_id IS NULL OR g.user_id = p_user_id)
          AND g.granted_at <= p_at
          AND (g.expires_at IS NULL OR g.expires_at > p_at)
    )
$$;
DROP INDEX poll_hidden_idx;
ALTER TABLE poll DROP COLUMN hidden_at;
DROP VIEW poll_report_queue;
DROP TABLE poll_report;
DROP TYPE report_resolution;
DROP TYPE report_reason;
