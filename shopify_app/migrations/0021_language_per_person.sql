-- The language belongs to the admin user reading the page, not to the shop: each request says
-- its own (i18n.requested), so the shop's remembered one, which made one colleague's language
-- every other colleague's, goes.
ALTER TABLE shops DROP COLUMN locale;
