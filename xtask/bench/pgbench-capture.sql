-- A capture's shape: one conditional write decides, its history goes with it, one commit.
\set id random(1, 200000)
BEGIN;
UPDATE bench_capture SET status = 'captured', captured_minor = 1800, version = version + 1, updated_at = now()
    WHERE id = :id AND version = (SELECT version FROM bench_capture WHERE id = :id);
INSERT INTO bench_history (payment_id, at, what) VALUES (:id, now(), 'captured');
COMMIT;
