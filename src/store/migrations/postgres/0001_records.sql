-- Call records, queue events, operators and their presence (PostgreSQL).
-- Timestamps are epoch milliseconds (sqlx `Any` carries no date types); ids are TEXT.
-- Keep in step with ../sqlite/0001_records.sql: same tables, columns and indexes.

CREATE TABLE IF NOT EXISTS calls (
    id            TEXT    PRIMARY KEY,
    node          TEXT    NOT NULL,
    caller        TEXT    NOT NULL,            -- as presented, or its salted sha256 hex
    language      TEXT    NULL,                -- NULL until the call ends
    ivr_path      TEXT    NOT NULL DEFAULT '', -- 'principale:1>demografici:2'
    queue         TEXT    NULL,
    arrived_at    BIGINT  NOT NULL,
    queued_at     BIGINT  NULL,
    answered_at   BIGINT  NULL,
    ended_at      BIGINT  NULL,
    outcome       TEXT    NULL,                -- NULL while the call is live
    wait_ms       BIGINT  NULL,
    talk_ms       BIGINT  NULL,
    wrap_ms       BIGINT  NULL,
    operator      TEXT    NULL,
    short_abandon BOOLEAN NOT NULL DEFAULT FALSE,
    last_seen_at  BIGINT  NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_arrived_at ON calls (arrived_at);
CREATE INDEX IF NOT EXISTS calls_queue_arrived_at ON calls (queue, arrived_at);
CREATE INDEX IF NOT EXISTS calls_live ON calls (node) WHERE outcome IS NULL;

CREATE TABLE IF NOT EXISTS queue_events (
    id       BIGSERIAL PRIMARY KEY,
    at       BIGINT    NOT NULL,
    call_id  TEXT      NOT NULL,
    queue    TEXT      NOT NULL,
    operator TEXT      NULL,
    event    TEXT      NOT NULL,
    data1    TEXT      NULL,
    data2    TEXT      NULL,
    data3    TEXT      NULL,
    data4    TEXT      NULL,
    data5    TEXT      NULL
);
CREATE INDEX IF NOT EXISTS queue_events_at ON queue_events (at);
CREATE INDEX IF NOT EXISTS queue_events_call_id ON queue_events (call_id);

CREATE TABLE IF NOT EXISTS operators (
    username     TEXT    PRIMARY KEY,
    display_name TEXT    NOT NULL DEFAULT '',
    ha1_md5      TEXT    NOT NULL,
    ha1_sha256   TEXT    NOT NULL,
    queues       TEXT    NOT NULL DEFAULT '[]', -- JSON list of {"queue": …, "level": …}
    languages    TEXT    NOT NULL DEFAULT 'it', -- comma list of ISO 639-1 codes
    max_calls    INTEGER NOT NULL DEFAULT 1,
    created_at   BIGINT  NOT NULL
);

CREATE TABLE IF NOT EXISTS operator_presence (
    id         BIGSERIAL PRIMARY KEY,
    username   TEXT      NOT NULL,
    state      TEXT      NOT NULL,
    reason     TEXT      NULL,
    started_at BIGINT    NOT NULL,
    ended_at   BIGINT    NULL
);
CREATE INDEX IF NOT EXISTS operator_presence_username ON operator_presence (username, started_at);

-- Per-install values, e.g. the salt used to hash callers' numbers.
CREATE TABLE IF NOT EXISTS store_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
