"""Status: what the merchant sees for each return, exchange and lone refund, derived from the
decision (what Shopify's facts say) and the documents (what Payday has). Never set by hand."""
from __future__ import annotations

from decimal import Decimal

from psycopg.types.json import Jsonb

from . import decision as d
from . import timeline


def derive(case: d.Case, docs: list[dict], *, blocked: str | None = None) -> tuple[str, dict | None]:
    """`blocked`: why the shop's settings keep a wanted document from being claimed."""
    failed = [doc for doc in docs if doc["status"] == "failed"]
    if failed:
        doc = failed[0]
        return "failed", {"code": f"payday_{doc['last_error_kind'] or 'error'}", "params": {"error": doc["last_error"] or ""}}
    in_flight = [doc for doc in docs if doc["status"] in ("claimed", "sending")]
    if in_flight:
        doc = max(in_flight, key=lambda x: x["attempts"])
        if doc["last_error"]:
            return "processing", {"code": "retrying", "params": {"error": doc["last_error"], "attempts": str(doc["attempts"]),
                                                                 "next_attempt_at": doc["next_attempt_at"].isoformat()}}
        return "processing", None
    if case.state in (d.OPEN, d.PENDING_SETTLEMENT, d.FAILED) or (case.state == d.NONE_NEEDED and not docs):
        return case.state, case.reason.as_dict() if case.reason else None
    if docs:
        return "created", None
    # The decision wants a document that was not claimed: the settings hold it back.
    return "open", {"code": blocked or "automatic_processing_off", "params": {}}


def upsert_case(conn, shop_id: int, order_id: int, case: d.Case, currency: str) -> int:
    row = conn.execute(
        """INSERT INTO cases (shop_id, order_id, case_gid, kind, label, status, reason, amount, currency)
           VALUES (%s, %s, %s, %s, %s, 'open', NULL, %s, %s)
           ON CONFLICT (shop_id, case_gid) DO UPDATE SET kind = EXCLUDED.kind, label = EXCLUDED.label
           RETURNING id""",
        (shop_id, order_id, case.key, case.kind, case.label, case.amount, currency)).fetchone()
    return row["id"]


def refresh(conn, shop_id: int, order_id: int, cases: dict[int, d.Case], *, blocked: str | None = None) -> None:
    """Recompute each case's status from its documents; note every change on the timeline."""
    for case_id, case in cases.items():
        docs = conn.execute("SELECT * FROM documents WHERE case_id = %s ORDER BY id", (case_id,)).fetchall()
        status, why = derive(case, docs, blocked=blocked)
        amount = sum((Decimal(doc["total"]) for doc in docs), Decimal(0)) if docs else case.amount
        before = conn.execute("SELECT status, reason, amount FROM cases WHERE id = %s", (case_id,)).fetchone()
        if (before["status"], before["reason"], before["amount"]) != (status, why, amount):
            conn.execute("UPDATE cases SET status = %s, reason = %s, amount = %s, updated_at = now() WHERE id = %s",
                         (status, Jsonb(why) if why else None, amount, case_id))
        if (before["status"], before["reason"]) != (status, why):
            # A reason that changed under the same status is kept apart: the story leaves it out. A
            # case as upsert_case inserted it (open, no reason: derive never gives that) had no status.
            timeline.add(conn, shop_id, order_id, case_id, "status" if before["status"] != status else "reason_changed",
                         {"from": None if (before["status"], before["reason"]) == ("open", None) else before["status"],
                          "to": status, "reason": why})
