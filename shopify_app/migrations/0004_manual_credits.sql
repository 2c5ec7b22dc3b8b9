-- Credit invoices made by hand (C6) and what the merchant pages need to stay fast.

-- A hand-made credit gets a case of its own, so it is listed on the home page like any return.
ALTER TABLE cases DROP CONSTRAINT cases_kind_check;
ALTER TABLE cases ADD CONSTRAINT cases_kind_check CHECK (kind IN ('return', 'exchange', 'refund', 'manual'));

-- The pipeline refreshes only the cases its decision returns, and a hand-made credit is not one
-- of them; its case follows its one document instead, by the same rules as status.derive.
CREATE FUNCTION manual_case_follows_document() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    new_status text;
    new_reason jsonb;
    old_status text;
BEGIN
    IF NEW.case_id IS NULL OR NEW.trigger <> 'manual' THEN
        RETURN NEW;
    END IF;
    IF NEW.status = 'failed' THEN
        new_status := 'failed';
        new_reason := jsonb_build_object('code', 'payday_' || COALESCE(NEW.last_error_kind, 'error'),
                                         'params', jsonb_build_object('error', COALESCE(NEW.last_error, '')));
    ELSIF NEW.status = 'sent' THEN
        new_status := 'created';
        new_reason := NULL;
    ELSIF NEW.last_error IS NOT NULL THEN
        new_status := 'processing';
        new_reason := jsonb_build_object('code', 'retrying', 'params', jsonb_build_object(
            'error', NEW.last_error, 'attempts', NEW.attempts::text,
            'next_attempt_at', to_char(NEW.next_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')));
    ELSE
        new_status := 'processing';
        new_reason := NULL;
    END IF;
    SELECT status INTO old_status FROM cases WHERE id = NEW.case_id AND kind = 'manual';
    IF NOT FOUND THEN
        RETURN NEW;
    END IF;
    UPDATE cases SET status = new_status, reason = new_reason, amount = NEW.total, updated_at = now()
     WHERE id = NEW.case_id AND (status, reason, amount) IS DISTINCT FROM (new_status, new_reason, NEW.total);
    IF old_status IS DISTINCT FROM new_status THEN
        INSERT INTO timeline (shop_id, order_id, case_id, kind, detail)
        VALUES (NEW.shop_id, NEW.order_id, NEW.case_id, 'status',
                jsonb_build_object('from', old_status, 'to', new_status, 'reason', new_reason));
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER manual_case_follows_document
    AFTER INSERT OR UPDATE OF status, last_error, attempts, next_attempt_at, payday_number ON documents
    FOR EACH ROW EXECUTE FUNCTION manual_case_follows_document();

-- The home list reads each case's documents, the detail page an order's cases and documents.
CREATE INDEX documents_by_case ON documents (case_id);
CREATE INDEX documents_by_order ON documents (order_id);
CREATE INDEX cases_by_order ON cases (order_id);

-- Search by order name or customer: word prefixes ('1001' finds #1001, 'jóns' Jónsdóttir, 'anna'
-- anna@example.is). Full-text rather than pg_trgm, which the embedded PostgreSQL lacks.
CREATE INDEX orders_search ON orders USING gin (to_tsvector('simple',
    coalesce(name, '') || ' ' || coalesce(customer_name, '') || ' ' || coalesce(customer_email, '')));

-- The shop's gateways seen so far (settings, checklist), read by a skip scan.
CREATE INDEX documents_gateways ON documents (shop_id, gateway);
