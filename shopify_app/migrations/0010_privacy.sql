-- Privacy and security (issue 8).

-- A privacy webhook whose checks fail (its payload names another shop, it is stale, or shop/redact
-- arrives for a shop that is installed or uninstalled less than 48 hours ago) is kept, not acted
-- on, for someone to review: status 'held', with why in `error`.
ALTER TABLE webhook_events DROP CONSTRAINT webhook_events_status_check;
ALTER TABLE webhook_events ADD CONSTRAINT webhook_events_status_check
    CHECK (status IN ('received', 'processed', 'rejected', 'failed', 'held'));
CREATE INDEX webhook_events_purge ON webhook_events (received_at) WHERE status IN ('processed', 'rejected');

-- What a customers/data_request found, for the merchant to download in Settings.
ALTER TABLE compliance_requests ADD COLUMN export jsonb;

-- A redacted order: its customer's details are never written back onto it.
ALTER TABLE orders ADD COLUMN redacted_at timestamptz;
