-- The invoicing pipeline's state. Postgres is the source of truth: a lost queue is rebuilt from
-- these rows (orders needing work, documents due for an attempt).

-- One row per Shopify order we have heard of: the work bookkeeping of the per-order job.
CREATE TABLE orders (
    id                 bigserial PRIMARY KEY,
    shop_id            bigint NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    order_gid          text NOT NULL,
    legacy_id          bigint NOT NULL,
    name               text,
    customer_id        bigint,           -- Shopify's, so customers/redact can find the rows
    customer_name      text,
    customer_email     text,
    currency           text,
    work_requested_at  timestamptz NOT NULL DEFAULT now(),
    work_started_at    timestamptz,
    work_done_at       timestamptz,
    last_error         text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (shop_id, order_gid)
);
CREATE INDEX orders_needing_work ON orders (work_requested_at)
    WHERE work_done_at IS NULL OR work_requested_at > work_started_at;

-- What the merchant sees: one row per return (or exchange) and per refund without a return.
CREATE TABLE cases (
    id             bigserial PRIMARY KEY,
    shop_id        bigint NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    order_id       bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    case_gid       text NOT NULL,        -- the Return's or the lone Refund's GID
    kind           text NOT NULL CHECK (kind IN ('return', 'exchange', 'refund')),
    label          text NOT NULL,
    status         text NOT NULL CHECK (status IN ('open', 'pending_settlement', 'processing', 'created', 'none_needed', 'failed')),
    reason         jsonb,                -- {"code": ..., "params": {...}}, rendered in the merchant's language
    amount         numeric,
    currency       text,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (shop_id, case_gid)
);
CREATE INDEX cases_listing ON cases (shop_id, updated_at DESC, id DESC);
CREATE INDEX cases_by_status ON cases (shop_id, status, updated_at DESC, id DESC);

-- Every credit invoice that must exist, claimed under its stable key before Payday is called.
-- status: claimed (not yet sent) -> sending (a call is or was under way: outcome unknown until
-- checked) -> sent (Payday has it, number may follow) ; failed (given up, retryable by hand).
CREATE TABLE documents (
    id                 bigserial PRIMARY KEY,
    shop_id            bigint NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    order_id           bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    case_id            bigint REFERENCES cases (id) ON DELETE SET NULL,
    doc_key            text NOT NULL,
    trigger            text NOT NULL CHECK (trigger IN ('return_close', 'refund', 'exchange_settled', 'manual')),
    return_gid         text,
    return_name        text,
    refund_gids        text[] NOT NULL DEFAULT '{}',
    lines              jsonb NOT NULL,
    total              numeric NOT NULL,
    currency           text NOT NULL,
    gateway            text,
    reference          text NOT NULL,
    status             text NOT NULL CHECK (status IN ('claimed', 'sending', 'sent', 'failed')),
    attempts           integer NOT NULL DEFAULT 0,
    next_attempt_at    timestamptz NOT NULL DEFAULT now(),
    last_error         text,
    last_error_kind    text,             -- transient | auth | validation | data
    payday_invoice_id  text,
    payday_number      text,
    request_body       jsonb,            -- exactly what was sent to Payday
    created_at         timestamptz NOT NULL DEFAULT now(),
    sent_at            timestamptz,
    UNIQUE (shop_id, doc_key)
);
CREATE INDEX documents_due ON documents (next_attempt_at) WHERE status IN ('claimed', 'sending');
CREATE INDEX documents_unnumbered ON documents (sent_at) WHERE status = 'sent' AND payday_number IS NULL;

-- The timeline the merchant reads on a return's page: events, decisions, Payday calls, errors.
CREATE TABLE timeline (
    id        bigserial PRIMARY KEY,
    shop_id   bigint NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    order_id  bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    case_id   bigint REFERENCES cases (id) ON DELETE CASCADE,
    at        timestamptz NOT NULL DEFAULT now(),
    kind      text NOT NULL,
    detail    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX timeline_by_order ON timeline (order_id, at);

-- Reconciliation's high-water mark per shop.
ALTER TABLE shops ADD COLUMN reconciled_until timestamptz;
