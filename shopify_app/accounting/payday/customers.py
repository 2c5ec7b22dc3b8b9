"""The Payday customer found for a buyer, remembered per shop and Payday connection so the
next document of the same buyer asks Payday nothing (the keys are hashed: a kennitala or an
e-mail is never stored in the clear)."""
from __future__ import annotations

import hashlib

from ... import db
from .api import CustomerMatch


def key(shop_id: int, customer: dict) -> str | None:
    """Who the buyer is to Payday: the kennitala when there is one, else the e-mail; hashed."""
    who = (f"kt:{customer['kennitala'].replace('-', '').strip()}" if customer.get("kennitala")
           else f"email:{customer['email'].strip().casefold()}" if customer.get("email") else None)
    return hashlib.sha256(f"{shop_id}:{who}".encode()).hexdigest() if who else None


def known(shop_id: int, client, customer: dict) -> CustomerMatch | None:
    """The Payday customer found for this buyer before, on this Payday connection."""
    hashed = key(shop_id, customer)
    if hashed is None:
        return None
    with db.transaction() as conn:
        row = conn.execute("""SELECT * FROM payday_customers WHERE shop_id = %s AND credentials_hash = %s
                              AND key_hash = %s""", (shop_id, client.token_key, hashed)).fetchone()
    return CustomerMatch(row["payday_customer_id"], row["found_by"], row["has_email"]) if row else None


def remember(shop_id: int, client, customer: dict, match: CustomerMatch) -> None:
    hashed = key(shop_id, customer)
    if hashed is None:
        return
    # A customer Skilvís created is one Payday now knows by that key: next time it is "found".
    by = {"created": "kennitala" if customer.get("kennitala") else "email"}.get(match.by, match.by)
    with db.transaction() as conn:
        conn.execute(
            """INSERT INTO payday_customers (shop_id, credentials_hash, key_hash, payday_customer_id, found_by,
                                             has_email, shopify_customer_id)
               VALUES (%s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (shop_id, credentials_hash, key_hash) DO UPDATE SET
                   payday_customer_id = EXCLUDED.payday_customer_id, has_email = EXCLUDED.has_email""",
            (shop_id, client.token_key, hashed, match.id, by, match.has_email, customer.get("shopify_id")))
