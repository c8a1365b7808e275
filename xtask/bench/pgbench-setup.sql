-- The tables of the pgbench anchors, beside the product's own (names of their own).
DROP TABLE IF EXISTS bench_capture, bench_history, bench_events;
CREATE TABLE bench_capture (
    id integer PRIMARY KEY,
    status text NOT NULL,
    captured_minor bigint,
    version bigint NOT NULL,
    updated_at timestamptz NOT NULL
);
INSERT INTO bench_capture
    SELECT i, 'authorized', NULL, 1, now() FROM generate_series(1, 200000) AS i;
CREATE TABLE bench_history (
    seq bigserial PRIMARY KEY,
    payment_id integer NOT NULL,
    at timestamptz NOT NULL,
    what text NOT NULL
);
CREATE TABLE bench_events (event_id text PRIMARY KEY, kind text NOT NULL, received_at timestamptz NOT NULL);
VACUUM ANALYZE bench_capture;
