-- The Payday customer found for a buyer, per shop and Payday connection, so the next document
-- of the same buyer costs no customer lookup. The buyer is named only by a hash of their
-- kennitala or e-mail (and Shopify's customer id, which customers/redact names).
CREATE TABLE payday_customers (
    shop_id              bigint NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    credentials_hash     text NOT NULL,
    key_hash             text NOT NULL,
    payday_customer_id   text NOT NULL,
    found_by             text NOT NULL,
    has_email            boolean NOT NULL,
    shopify_customer_id  bigint,
    created_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop_id, credentials_hash, key_hash)
);
CREATE INDEX payday_customers_by_shopify_customer ON payday_customers (shop_id, shopify_customer_id);
