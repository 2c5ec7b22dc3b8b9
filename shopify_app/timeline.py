"""The timeline of an order: what happened, in order, for the merchant's detail page (story.py
tells it in sentences)."""
from __future__ import annotations

from datetime import datetime

from psycopg.types.json import Jsonb


def add(conn, shop_id: int, order_id: int, case_id: int | None, kind: str, detail: dict | None = None,
        at: datetime | None = None) -> None:
    """`at`: when it happened, where Shopify says so (a refund, a close); else now."""
    conn.execute("""INSERT INTO timeline (shop_id, order_id, case_id, kind, detail, at)
                    VALUES (%s, %s, %s, %s, %s, coalesce(%s, now()))""",
                 (shop_id, order_id, case_id, kind, Jsonb(detail or {}), at))
