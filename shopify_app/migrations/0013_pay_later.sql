-- A credit invoice Payday refused to create as paid is created unpaid; its payment (date and
-- payment type) waits here until Payday has issued it, then is registered.
ALTER TABLE documents ADD COLUMN pay_later jsonb;

-- C7: the sale invoice a credit invoice names (its number in Payday), or '' when it was looked
-- for and not found; NULL before the lookup.
ALTER TABLE documents ADD COLUMN original_number text;
