-- Issue 12: every system's document id and number, not only Payday's, in columns named for what
-- they hold (`documents.accounting` says which system).
ALTER TABLE documents RENAME COLUMN payday_invoice_id TO accounting_id;
ALTER TABLE documents RENAME COLUMN payday_number TO accounting_number;
