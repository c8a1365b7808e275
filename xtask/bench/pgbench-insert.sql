-- A webhook event's id stored once.
INSERT INTO bench_events (event_id, kind, received_at)
    VALUES (md5(random()::text || clock_timestamp()::text), 'payment_intent.succeeded', now())
    ON CONFLICT DO NOTHING;
