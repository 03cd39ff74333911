-- migrate:up
-- What every vote the consumer inserts pays for, less (bench/consumer_throughput.py):
--
-- vote (poll_id) -> poll was checked by a trigger on each inserted vote although the
-- composite key vote (poll_id, vote_option_id) -> vote_option (poll_id, id) already
-- names an option of an existing poll (vote_option.poll_id references poll), and a
-- deleted poll still takes its votes along: poll -> vote_option -> vote, both ON DELETE
-- CASCADE. The consumer takes the batch's polls itself first (lock_polls), so the lock
-- order against a poll's deletion does not change.
--
-- vote (vote_option_id) was indexed, but no query looks votes up by option alone; the
-- cascade from a deleted option (only ever with its poll) finds them by the primary
-- key's poll_id prefix. One index less to maintain on every insert.
ALTER TABLE vote DROP CONSTRAINT vote_poll_id_fkey;
DROP INDEX vote_vote_option_id_idx;

-- migrate:down
CREATE INDEX vote_vote_option_id_idx ON vote (vote_option_id);
ALTER TABLE vote
    ADD CONSTRAINT vote_poll_id_fkey FOREIGN KEY (poll_id) REFERENCES poll (id) ON DELETE CASCADE;
