-- The read side: projections of the JOBS stream. Everything here can be rebuilt
-- by `conveyor replay --rebuild`, so nothing is written that is not in an event.

CREATE TABLE jobs (
    job_id       uuid PRIMARY KEY,
    owner        text        NOT NULL,
    upload_id    uuid        NOT NULL,
    filename     text        NOT NULL,
    content_type text        NOT NULL,
    size         bigint      NOT NULL,
    object_key   text        NOT NULL,
    sha256       text,
    mime         text,
    status       text        NOT NULL,
    result       json,   -- json, not jsonb: keeps the column order of `preview` rows
    result_key   text,
    error        text,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    -- stream sequence of the last event applied to this row
    last_seq     bigint      NOT NULL
);

-- GET /v1/jobs: the caller's jobs, newest first, keyset-paginated.
CREATE INDEX jobs_owner_newest ON jobs (owner, created_at DESC, job_id DESC);
CREATE INDEX jobs_owner_status_newest ON jobs (owner, status, created_at DESC, job_id DESC);

-- Append-only log of applied events; event_id makes a repeated event a no-op.
CREATE TABLE job_events (
    seq         bigint PRIMARY KEY,
    event_id    uuid        NOT NULL UNIQUE,
    job_id      uuid        NOT NULL,
    type        text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    envelope    jsonb       NOT NULL
);
CREATE INDEX job_events_job ON job_events (job_id, seq);

-- The watermark: the last stream sequence applied, written in the same
-- transaction as the effect it covers.
CREATE TABLE watermarks (
    stream     text PRIMARY KEY,
    seq        bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
