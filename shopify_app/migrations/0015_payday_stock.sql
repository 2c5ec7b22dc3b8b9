-- "Payday keeps stock for these products": exchange items go out with their sku (Payday moves
-- stock by -quantity when it issues the invoice), and returned items come back by a product
-- movement of +quantity each (docs/PAYDAY_MODEL.md F1-F5).
ALTER TABLE shop_settings ADD COLUMN payday_keeps_stock boolean NOT NULL DEFAULT false;

-- One row per returned item line of a sent document: recorded in the transaction that records
-- the document as sent, so each is put back exactly once; `sending` says a call is under way,
-- and an unknown outcome is looked for among the product's movements before a second call.
CREATE TABLE stock_moves (
    id               bigserial PRIMARY KEY,
    shop_id          bigint NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    order_id         bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    document_id      bigint NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    position         int NOT NULL,
    sku              text NOT NULL,
    quantity         int NOT NULL CHECK (quantity > 0),
    description      text NOT NULL,
    moved_on         date NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sending', 'done', 'skipped', 'failed')),
    product_id       text,
    movement_id      text,
    attempts         int NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    UNIQUE (document_id, position)
);
CREATE INDEX stock_moves_due ON stock_moves (next_attempt_at) WHERE status IN ('pending', 'sending');
CREATE INDEX stock_moves_by_order ON stock_moves (order_id);

-- C7: the date of the sale invoice a credit invoice names (with original_number).
ALTER TABLE documents ADD COLUMN original_date date;
