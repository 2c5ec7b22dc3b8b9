-- Work is claimed from Postgres, fairly across shops (dispatch.py): the webhook row is the work
-- request, and an order is handed to the queue only while its shop has a free slot.
ALTER TABLE orders ADD COLUMN queued_at timestamptz;     -- handed to a worker, not finished yet
ALTER TABLE orders ADD COLUMN not_before timestamptz;    -- Shopify's bucket for the shop is empty till then
ALTER TABLE orders ADD COLUMN lane text NOT NULL DEFAULT 'live' CHECK (lane IN ('live', 'history'));

DROP INDEX orders_needing_work;
CREATE INDEX orders_needing_work ON orders (shop_id, work_requested_at)
    WHERE work_done_at IS NULL OR work_requested_at > work_started_at OR work_done_at < work_started_at;
CREATE INDEX orders_in_flight ON orders (shop_id) WHERE queued_at IS NOT NULL;

