-- Shopify as it really is (issue 7).

-- When Shopify refused the shop's tokens for good (refresh refused): the home page says so the
-- next time anyone opens Skilvís, which also exchanges a new pair. Cleared by that exchange.
ALTER TABLE shops ADD COLUMN access_lost_at timestamptz;

-- Without protected customer data, credit invoices go to one Payday customer the merchant picks.
ALTER TABLE shop_settings ADD COLUMN payday_default_customer_id text;
ALTER TABLE shop_settings ADD COLUMN payday_default_customer_name text;

-- An order Shopify refuses to show for a reason that does not pass in minutes (a missing scope,
-- a frozen shop) is read again on a capped backoff, not on every sweep.
ALTER TABLE orders ADD COLUMN read_failures integer NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN read_again_at timestamptz;

-- How the Payday customer of each document was found: kennitala | email | created | default.
ALTER TABLE documents ADD COLUMN customer_by text;
