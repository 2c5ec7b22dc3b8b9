-- F3: a refund invoiced while pending whose money failed later gets one correcting invoice.
ALTER TABLE documents DROP CONSTRAINT documents_trigger_check;
ALTER TABLE documents ADD CONSTRAINT documents_trigger_check
    CHECK (trigger IN ('return_close', 'refund', 'exchange_settled', 'manual', 'correction'));

-- The invoice's date is its trigger's (the close, the refund, the settlement) and its payment
-- date the day the refund's money moved, both in Iceland's time; not the day Skilvís sent it.
ALTER TABLE documents ADD COLUMN document_date date;
ALTER TABLE documents ADD COLUMN paid_date date;
-- The merchant's note on the refunds (why), carried to the invoice's description.
ALTER TABLE documents ADD COLUMN note text;
