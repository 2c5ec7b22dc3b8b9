-- The sale invoice (C7) looked up in batches: the Payday company's invoices dated in a window of
-- days, read once per shop and Payday connection (GET /invoices?dateFrom=&dateTo=, at most two
-- pages of 500) and shared by every order whose window it covers while it is fresh. Only what
-- matching needs is kept, nothing personal: Payday's invoice id, number and date, the Payday
-- customer id, the positive total, and hashes of the words with a digit in its description and
-- reference (an order number is one; a phone number in a customer's note stays unreadable).
CREATE TABLE payday_invoice_windows (
    id                bigserial PRIMARY KEY,
    shop_id           bigint NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    credentials_hash  text NOT NULL,
    date_from         date NOT NULL,
    date_to           date NOT NULL,
    complete          boolean NOT NULL,     -- false: more pages than the bound; look per customer
    fetched_at        timestamptz NOT NULL DEFAULT now()   -- when the read began
);
CREATE INDEX payday_invoice_windows_by_shop ON payday_invoice_windows (shop_id, credentials_hash, fetched_at DESC);

CREATE TABLE payday_window_invoices (
    window_id     bigint NOT NULL REFERENCES payday_invoice_windows (id) ON DELETE CASCADE,
    position      int NOT NULL,            -- the order Payday listed them in
    invoice_id    text NOT NULL,
    number        text,                    -- NULL while Payday had not numbered it yet
    invoice_date  date,
    customer_id   text NOT NULL,
    amount        numeric NOT NULL CHECK (amount > 0),
    words         text[] NOT NULL,         -- hashes (documents.word_hash) of its words with a digit
    PRIMARY KEY (window_id, position)
);
CREATE INDEX payday_window_invoices_by_customer ON payday_window_invoices (window_id, customer_id);

-- The day the order was placed (Shopify's createdAt, in Iceland), when the caller knows it: the
-- window is then the days around it rather than a look back from the first we heard of the order.
ALTER TABLE documents ADD COLUMN order_date date;
