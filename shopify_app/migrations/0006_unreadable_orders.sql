-- The home page lists the orders Skilvís could not read (orders.last_error holds why, a code
-- the merchant sees in their language); few rows, looked up on every home page load.
CREATE INDEX orders_unreadable ON orders (shop_id) WHERE last_error IS NOT NULL;
