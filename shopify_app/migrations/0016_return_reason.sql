-- Issue 9: the return's reasons (the names of Shopify's return reason definitions, never the
-- customer's free text), written on the credit invoice.
ALTER TABLE documents ADD COLUMN return_reason text;
