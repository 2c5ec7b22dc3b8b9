-- Shops that installed the app, with their Admin API tokens encrypted (Fernet) at rest.
CREATE TABLE shops (
    id                        bigserial PRIMARY KEY,
    domain                    text NOT NULL UNIQUE CHECK (domain ~ '^[a-z0-9][a-z0-9-]*[a-z0-9]\.myshopify\.com$'),
    access_token_enc          bytea,
    access_token_expires_at   timestamptz,
    refresh_token_enc         bytea,
    refresh_token_expires_at  timestamptz,
    scopes                    text,
    locale                    text,
    installed_at              timestamptz,
    uninstalled_at            timestamptz,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now()
);

-- Every webhook delivery that passed the HMAC check, written before any work is done.
-- (shop_domain, event_key) is unique: Shopify's duplicate deliveries carry the same
-- X-Shopify-Event-Id, so the second insert does nothing and nothing is enqueued twice.
CREATE TABLE webhook_events (
    id            bigserial PRIMARY KEY,
    shop_domain   text NOT NULL,
    event_key     text NOT NULL,
    webhook_id    text,
    topic         text NOT NULL,
    api_version   text,
    triggered_at  timestamptz,
    payload       jsonb,
    raw_body      bytea,          -- kept only when the body could not be read as JSON
    status        text NOT NULL CHECK (status IN ('received', 'processed', 'rejected', 'failed')),
    error         text,
    attempts      integer NOT NULL DEFAULT 0,
    received_at   timestamptz NOT NULL DEFAULT now(),
    processed_at  timestamptz,
    UNIQUE (shop_domain, event_key)
);
CREATE INDEX webhook_events_pending ON webhook_events (received_at) WHERE status = 'received';

-- GDPR requests, recorded without the personal data they name.
CREATE TABLE compliance_requests (
    id            bigserial PRIMARY KEY,
    shop_domain   text NOT NULL,
    topic         text NOT NULL,
    customer_id   bigint,
    orders        bigint[] NOT NULL DEFAULT '{}',
    request_id    text,
    received_at   timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz
);
