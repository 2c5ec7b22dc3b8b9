-- F3: a refund invoiced while pending whose money failed later gets one correcting invoice.
ALTER TABLE documents DROP CONSTRAINT documents_trigger_check;
ALTER TABLE documents ADD CONSTRAINT documents_trigger_check
    CHECK (trigger IN ('return_close', 'refund', 'exchange_settled', 'manual', 'correction'));
