-- Every Shopify payment gateway a shop has used, as soon as Skilvís sees it on an order (not
-- only once a credit invoice went out through it), so the merchant can map it to a Payday
-- payment type before the first credit invoice, which would otherwise be created unpaid.
CREATE TABLE shop_gateways (
    shop_id        bigint NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    gateway        text NOT NULL,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop_id, gateway)
);
INSERT INTO shop_gateways (shop_id, gateway)
SELECT DISTINCT shop_id, gateway FROM documents WHERE gateway IS NOT NULL
ON CONFLICT DO NOTHING;

-- Replaced by shop_gateways.
DROP INDEX documents_gateways;
