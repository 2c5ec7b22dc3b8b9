-- A credit invoice Payday refused to create as paid is created unpaid; its payment (date and
-- payment type) waits here until Payday has issued it, then is registered.
ALTER TABLE documents ADD COLUMN pay_later jsonb;
