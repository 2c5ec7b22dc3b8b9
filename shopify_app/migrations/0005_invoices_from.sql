-- Where automatic invoicing begins. A return closed or a refund made before this moment was
-- the bookkeeper's to handle before Skilvís (a second credit invoice for it would be a
-- duplicate in the books), so it is shown as "none needed" and never sent on its own.
-- NULL: from when the shop installed Skilvís (shops.created_at). An earlier date is history on
-- request: the merchant sets it in Settings and reconciliation reads the orders back to it.
ALTER TABLE shop_settings ADD COLUMN invoices_from timestamptz;
