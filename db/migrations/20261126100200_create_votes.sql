-- migrate:up
-- One row per (poll, user): the user's current vote as last applied by the consumer.
CREATE TABLE vote (
    poll_id        bigint      NOT NULL REFERENCES poll (id) ON DELETE CASCADE,
    user_id        bigint      NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    vote_option_id bigint      NOT NULL,
    event_id       uuid        NOT NULL,
    submitted_at   timestamptz NOT NULL,
    applied_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (poll_id, user_id),
    CONSTRAINT vote_option_fkey FOREIGN KEY (poll_id, vote_option_id)
        REFERENCES vote_option (poll_id, id) ON DELETE CASCADE
);
CREATE INDEX vote_user_id_idx ON vote (user_id);
CREATE INDEX vote_vote_option_id_idx ON vote (vote_option_id);

-- Exact counts per option, changed by deltas in the consumer's transaction.
CREATE TABLE vote_count (
    vote_option_id bigint NOT NULL PRIMARY KEY REFERENCES vote_option (id) ON DELETE CASCADE,
    poll_id        bigint NOT NULL REFERENCES poll (id) ON DELETE CASCADE,
    vote_count     bigint NOT NULL DEFAULT 0,
    CONSTRAINT vote_count_not_negative CHECK (vote_count >= 0)
);
CREATE INDEX vote_count_poll_id_idx ON vote_count (poll_id);

-- Grows by one with every committed change to a poll's counts; orders cache writes
-- and stream events.
CREATE TABLE poll_counts_version (
    poll_id bigint NOT NULL PRIMARY KEY REFERENCES poll (id) ON DELETE CASCADE,
    version bigint NOT NULL DEFAULT 0
);

-- The last Kafka offset whose effect is in this database, per consumer group and
-- partition; written in the same transaction as the votes it covers.
CREATE TABLE consumer_offset (
    consumer_group text        NOT NULL,
    topic          text        NOT NULL,
    partition      integer     NOT NULL,
    last_offset    bigint      NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);

-- migrate:down
DROP TABLE consumer_offset;
DROP TABLE poll_counts_version;
DROP TABLE vote_count;
DROP TABLE vote;
