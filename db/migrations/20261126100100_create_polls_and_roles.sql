-- migrate:up
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TYPE poll_perms AS ENUM ('public_view', 'public_vote', 'private');
CREATE TYPE poll_role AS ENUM ('creator', 'voter', 'viewer', 'moderator');
CREATE TYPE poll_permission AS ENUM ('poll:view', 'poll:vote', 'poll:delete', 'poll:assign_role');

CREATE TABLE poll (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    question    text        NOT NULL,
    creator_id  bigint      NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    poll_perms  poll_perms  NOT NULL DEFAULT 'public_vote',
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    CONSTRAINT poll_question_length CHECK (char_length(question) BETWEEN 1 AND 500)
);
CREATE INDEX poll_creator_id_idx ON poll (creator_id);

CREATE TABLE vote_option (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    poll_id   bigint   NOT NULL REFERENCES poll (id) ON DELETE CASCADE,
    position  smallint NOT NULL,
    text      text     NOT NULL,
    CONSTRAINT vote_option_position_key UNIQUE (poll_id, position),
    -- Target of vote's composite key: a vote can only name an option of its own poll.
    CONSTRAINT vote_option_poll_id_id_key UNIQUE (poll_id, id),
    CONSTRAINT vote_option_text_length CHECK (char_length(text) BETWEEN 1 AND 200),
    CONSTRAINT vote_option_position_range CHECK (position >= 0)
);

CREATE TABLE role_permission (
    role       poll_role       NOT NULL,
    permission poll_permission NOT NULL,
    PRIMARY KEY (role, permission)
);
INSERT INTO role_permission (role, permission) VALUES
    ('creator', 'poll:view'), ('creator', 'poll:vote'),
    ('creator', 'poll:delete'), ('creator', 'poll:assign_role'),
    ('voter', 'poll:view'), ('voter', 'poll:vote'),
    ('viewer', 'poll:view'),
    ('moderator', 'poll:view'), ('moderator', 'poll:delete');

-- A grant gives one role to one user on one poll, to one user on every poll
-- (poll_id NULL, moderators) or to everyone on one poll (user_id NULL, public polls),
-- valid over [granted_at, expires_at). Revoking ends the period; rows are history.
CREATE TABLE poll_grant (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    role        poll_role   NOT NULL,
    user_id     bigint      REFERENCES "user" (id) ON DELETE CASCADE,
    poll_id     bigint      REFERENCES poll (id) ON DELETE CASCADE,
    granted_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    granted_by  bigint      REFERENCES "user" (id) ON DELETE SET NULL,
    CONSTRAINT poll_grant_scope CHECK (user_id IS NOT NULL OR poll_id IS NOT NULL),
    CONSTRAINT poll_grant_period CHECK (expires_at IS NULL OR expires_at > granted_at),
    CONSTRAINT poll_grant_no_overlap EXCLUDE USING gist (
        (coalesce(user_id, 0)) WITH =,
        (coalesce(poll_id, 0)) WITH =,
        role WITH =,
        tstzrange(granted_at, expires_at, '[)') WITH &&
    )
);
CREATE INDEX poll_grant_poll_id_idx ON poll_grant (poll_id);
CREATE INDEX poll_grant_user_id_idx ON poll_grant (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX poll_grant_global_idx ON poll_grant (user_id) WHERE poll_id IS NULL;

-- May user p_user_id (NULL: anonymous) do p_permission on poll p_poll_id at p_at?
-- The one place that answers it; plain SQL so the planner can inline it into queries.
CREATE FUNCTION user_may(
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

-- migrate:down
DROP FUNCTION user_may(bigint, poll_permission, bigint, timestamptz);
DROP TABLE poll_grant;
DROP TABLE role_permission;
DROP TABLE vote_option;
DROP TABLE poll;
DROP TYPE poll_permission;
DROP TYPE poll_role;
DROP TYPE poll_perms;
