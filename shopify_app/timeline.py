"""The timeline of an order: what happened, in order, for the merchant's detail page."""
from __future__ import annotations

from psycopg.types.json import Jsonb


def add(conn, shop_id: int, order_id: int, case_id: int | None, kind: str, detail: dict | None = None) -> None:
    conn.execute("INSERT INTO timeline (shop_id, order_id, case_id, kind, detail) VALUES (%s, %s, %s, %s, %s)",
                 (shop_id, order_id, case_id, kind, Jsonb(detail or {})))
