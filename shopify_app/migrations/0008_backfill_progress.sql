-- History on request, kept in Postgres so it is never lost with a job: which date the merchant
-- asked to read back to and when, when that finished and how many orders it passed over again,
-- or why it has not finished yet. Asked and not finished: the periodic reconciliation asks again.
ALTER TABLE shop_settings
    ADD COLUMN backfill_from timestamptz,
    ADD COLUMN backfill_asked_at timestamptz,
    ADD COLUMN backfill_done_at timestamptz,
    ADD COLUMN backfill_orders integer,
    ADD COLUMN backfill_error text;
CREATE INDEX shop_settings_backfill_unfinished ON shop_settings (shop_id)
    WHERE backfill_asked_at IS NOT NULL AND backfill_done_at IS NULL;
