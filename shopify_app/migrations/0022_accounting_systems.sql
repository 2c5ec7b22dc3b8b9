-- Issue 12: each shop picks its accounting system. Payday keeps its own columns; a Danish
-- system's credentials and the merchant's mappings (VAT rate -> product or account, shipping
-- and fee products, e-conomic layout/terms/VAT zone, Dinero organisation) are one encrypted
-- JSON document, since the secrets sit among them.
ALTER TABLE shop_settings
    ADD COLUMN accounting text NOT NULL DEFAULT 'payday'
        CHECK (accounting IN ('payday', 'economic', 'dinero', 'billy')),
    ADD COLUMN accounting_config_enc bytea;

-- Which system a document went to: payday_invoice_id / payday_number hold that system's id and
-- number (the names predate the other systems).
ALTER TABLE documents ADD COLUMN accounting text NOT NULL DEFAULT 'payday';
