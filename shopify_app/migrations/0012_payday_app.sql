-- Payday's own Shopify app makes credit invoices for refunds and closed returns too (Payday help
-- articles 216, 217): the merchant says whether it runs in the shop, and whether its credit
-- invoices are off there. Until then nothing is credited twice: Skilvís holds its own.
ALTER TABLE shop_settings ADD COLUMN payday_app text NOT NULL DEFAULT 'unknown'
    CHECK (payday_app IN ('unknown', 'not_installed', 'credits_off', 'credits_on'));
