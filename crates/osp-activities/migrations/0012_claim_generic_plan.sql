-- OSP queue: the claim's statements are planned once per connection, not on every call
-- (issue 16).
--
-- PL/pgSQL keeps a plan per statement and, after five calls, reuses a generic one unless its
-- estimated cost is well above the custom plans'. The claim's selection stops after
-- `limit p_batch`; a generic plan cannot know the batch and is costed for a tenth of the
-- rows, so PostgreSQL planned every statement of every claim again, about a fifth of a
-- one-job claim's time. The generic plans are the custom ones (index scans of the claimable
-- and lease indexes in claim order, stopping at the limit; look-ups by id), checked with
-- auto_explain on a queue of 20,000 jobs. Measured with pgbench on one connection, a claim
-- of one job and its settlement: 2.24 -> 1.88 ms per cycle; of 16 jobs: 5.53 -> 5.42 ms.
--
-- A function's SET clause holds for the statements it runs, the appends and triggers
-- included, and is replaced by CREATE OR REPLACE: a later migration restating the claim
-- must restate it too (osp-bridge's queue_sql test checks it).
alter function api.claim_workflow_jobs(text, integer, interval)
    set plan_cache_mode = force_generic_plan;
