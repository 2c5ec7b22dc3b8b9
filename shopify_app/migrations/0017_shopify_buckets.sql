-- Issue 10: Shopify's GraphQL cost bucket, one per shop, shared by every worker and web process
-- (shopify_admin.AdminClient). A query's requested cost is taken from `available` before the
-- call, in one UPDATE that first restores restore_rate points a second since updated_at (up to
-- maximum); the answer's throttleStatus sets it again. Redis holds only the queue.
CREATE TABLE shopify_buckets (
    shop_domain   text PRIMARY KEY REFERENCES shops (domain) ON DELETE CASCADE,
    available     numeric NOT NULL,
    maximum       numeric NOT NULL,
    restore_rate  numeric NOT NULL,
    updated_at    timestamptz NOT NULL
);
