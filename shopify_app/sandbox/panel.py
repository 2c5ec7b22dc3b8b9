"""The sandbox panel (/sandbox), registered only in sandbox mode: a tiny Shopify admin with the
embedded app in a frame, loaded as Shopify loads it, beside what a merchant does in Shopify to
the demo orders (open, close or reopen a return, refund, pay, settle).

It lives in the web app, not in the launcher that holds the stand-ins, and drives the Shopify
stand-in through its `/_control/` HTTP API: then the panel, the framed app and the App Bridge
stand-in (`/sandbox/id-token`) share one origin, and the stand-ins' state stays in the one
process that owns it. After each change the stand-in delivers its webhooks to the app, and the
panel waits (briefly) for the worker to finish, so the frame shows the new status.
"""
from __future__ import annotations

import base64
import json
import time
from decimal import Decimal
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests
from flask import Blueprint, abort, current_app, jsonify, redirect, render_template, request, url_for

from .. import db, orders, reconcile, shops
from .demo import DK_SHOP, DK_SHOP_NAME, SHOP, SHOP_NAME

# The demo shops the panel shows: the Icelandic one on Payday, the Danish one on Dinero.
SHOPS = {SHOP: SHOP_NAME, DK_SHOP: DK_SHOP_NAME}


def _shop() -> str:
    chosen = request.values.get("shop")
    return chosen if chosen in SHOPS else SHOP

bp = Blueprint("sandbox", __name__, url_prefix="/sandbox")

SETTLE_WAIT = 15.0  # seconds the panel waits for the worker before showing the frame anyway

TEXT = {
    "is": {
        "title": "Skilvís – prófunarumhverfi", "admin": "Shopify-stjórnborð (eftirlíking)", "orders": "Pantanir",
        "intro": "Gerðu það sem verslunareigandi gerir í Shopify og sjáðu stöðuna breytast í Skilvís.",
        "open": "Samþykkja skil", "decline": "Hafna skilum", "close": "Loka skilum", "reopen": "Opna skil aftur",
        "refund_return": "Endurgreiða skil", "new_return": "Ný skil (1 stk.)", "refund": "Endurgreiða án skila (1 stk.)",
        "pay": "Viðskiptavinur greiðir {amount}", "settle": "Greiðsla gerð upp", "settle_fail": "Greiðsla mistekst",
        "done": "Gert: {what}", "refused": "Shopify hafnaði: {error}", "still": "Skilvís er enn að vinna úr þessu.",
        "outstanding": "Ógreitt", "pending": "Í bið", "returns": "Skil", "no_returns": "Engin skil",
    },
    "en": {
        "title": "Skilvís – sandbox", "admin": "Shopify admin (stand-in)", "orders": "Orders",
        "intro": "Do what a merchant does in Shopify and watch the status change in Skilvís.",
        "open": "Approve return", "decline": "Decline return", "close": "Close return", "reopen": "Reopen return",
        "refund_return": "Refund return", "new_return": "New return (1 item)", "refund": "Refund without return (1 item)",
        "pay": "Customer pays {amount}", "settle": "Payment settles", "settle_fail": "Payment fails",
        "done": "Done: {what}", "refused": "Shopify refused: {error}", "still": "Skilvís is still working on it.",
        "outstanding": "Outstanding", "pending": "Pending", "returns": "Returns", "no_returns": "No returns",
    },
    "da": {
        "title": "Skilvís – testmiljø", "admin": "Shopify-administrator (simuleret)", "orders": "Ordrer",
        "intro": "Gør det, som en butiksejer gør i Shopify, og se status skifte i Skilvís.",
        "open": "Godkend returnering", "decline": "Afvis returnering", "close": "Luk returnering",
        "reopen": "Genåbn returnering", "refund_return": "Refundér returnering", "new_return": "Ny returnering (1 stk.)",
        "refund": "Refundér uden returnering (1 stk.)",
        "pay": "Kunden betaler {amount}", "settle": "Betalingen gennemføres", "settle_fail": "Betalingen mislykkes",
        "done": "Udført: {what}", "refused": "Shopify afviste: {error}", "still": "Skilvís arbejder stadig på det.",
        "outstanding": "Udestående", "pending": "Afventer", "returns": "Returneringer", "no_returns": "Ingen returneringer",
    },
}


def _locale() -> str:
    asked = request.values.get("locale")
    return asked if asked in TEXT else "is"


def _control(method: str, path: str, **kwargs):
    base = current_app.config["SETTINGS"].shop_url_template.split("/shops/")[0]
    resp = requests.request(method, f"{base}/_control{path}", timeout=30, **kwargs)
    return resp


def _id_token(shop: str) -> str:
    resp = _control("POST", f"/shops/{shop}/id_token", json={})
    resp.raise_for_status()
    return resp.json()["id_token"]


def _frame_url(path: str, shop: str, locale: str) -> str:
    """The embedded app as Shopify opens it: shop, host, locale and a fresh ID token."""
    parts = urlsplit(path if path.startswith("/") and not path.startswith("//") else "/")
    params = {k: v for k, v in parse_qsl(parts.query) if k not in ("id_token", "locale", "shop", "host")}
    host = base64.b64encode(f"admin.shopify.com/store/{shop.split('.')[0]}".encode()).decode().rstrip("=")
    params.update(embedded="1", shop=shop, host=host, locale=locale, id_token=_id_token(shop))
    return f"{parts.path}?{urlencode(params)}"


def _money(amount: str) -> str:
    value = Decimal(amount)
    return f"{value:,.0f}".replace(",", ".") + " kr."


def _actions(order: dict, t: dict) -> tuple[list, list]:
    """What the merchant can do to this order now: (per return, for the order), each
    (label, step) with a scenario step for the stand-in's store."""
    per_return = []
    for ret in order["returns"]:
        left = [{"sku": ln["sku"], "quantity": ln["quantity"] - ln["refunded"]}
                for ln in ret["lines"] if ln["quantity"] > ln["refunded"]]
        acts = []
        if ret["status"] == "REQUESTED":
            acts += [(t["open"], {"do": "return_open", "return": ret["label"]}),
                     (t["decline"], {"do": "return_decline", "return": ret["label"]})]
        if ret["status"] in ("OPEN", "CLOSED") and left:
            acts.append((t["refund_return"], {"do": "refund", "return": ret["label"], "lines": left}))
        if ret["status"] == "OPEN":
            acts.append((t["close"], {"do": "return_close", "return": ret["label"]}))
        if ret["status"] == "CLOSED":
            acts.append((t["reopen"], {"do": "return_reopen", "return": ret["label"]}))
        per_return.append((ret, acts))
    acts = []
    returnable = next((li for li in order["line_items"]
                       if not li["exchange"] and li["quantity"] > li["returned"]), None)
    if returnable:
        label = f"R{len(order['returns']) + 1}"
        acts.append((t["new_return"], {"do": "return_open", "return": label,
                                       "lines": [{"sku": returnable["sku"], "quantity": 1}]}))
    refundable = next((li for li in order["line_items"]
                       if not li["exchange"] and li["quantity"] > li["refunded"] + li["returned"]), None)
    if refundable:
        acts.append((t["refund"], {"do": "refund", "lines": [{"sku": refundable["sku"], "quantity": 1}]}))
    if Decimal(order["outstanding"]) > 0:
        acts.append((t["pay"].format(amount=_money(order["outstanding"])),
                     {"do": "pay", "amount": order["outstanding"], "status": "pending"}))
    if order["pending"]:
        acts += [(t["settle"], {"do": "settle", "outcome": "success"}),
                 (t["settle_fail"], {"do": "settle", "outcome": "failure"})]
    return per_return, acts


@bp.get("")
def panel():
    locale = _locale()
    t = TEXT[locale]
    shop = _shop()
    listed = _control("GET", f"/shops/{shop}/orders").json()
    shown = []
    for summary in sorted(listed, key=lambda o: o["name"]):
        order = _control("GET", f"/shops/{shop}/orders/{summary['id']}/details").json()
        per_return, acts = _actions(order, t)
        shown.append({"order": order, "summary": summary, "returns": per_return, "actions": acts})
    other = "en" if locale == "is" else "is"
    return render_template("sandbox/panel.html", t=t, locale=locale, other=other, shop=shop, shop_name=SHOPS[shop],
                           shops=SHOPS, orders=shown, frame_src=_frame_url(request.args.get("frame", "/"), shop, locale),
                           frame_path=request.args.get("frame", "/"), said=request.args.get("said"),
                           money=_money, json=json)


@bp.post("/act")
def act():
    locale = _locale()
    t = TEXT[locale]
    try:
        order_id = int(request.form["order_id"])
        step = json.loads(request.form["step"])
    except (KeyError, ValueError):
        abort(400, "order_id and step are required")
    shop_domain = _shop()
    resp = _control("POST", f"/shops/{shop_domain}/orders/{order_id}/steps", json=step)
    if resp.status_code != 200:
        said = t["refused"].format(error=resp.json().get("error", resp.text))
    else:
        _control("POST", "/deliver", json={}).raise_for_status()
        # What production's 10-minute reconciliation would find (a payment settling in place
        # sends no webhook Skilvís subscribes to), found now: the sandbox has no time to wait.
        shop = shops.get(shop_domain)
        if shop:
            reconcile.reconcile_shop(shop["id"])
        said = t["done"].format(what=request.form.get("label", step.get("do")))
        if not _wait_until_settled(shop_domain, order_id):
            said += " " + t["still"]
    frame = request.form.get("frame") or "/"
    return redirect(url_for("sandbox.panel", locale=locale, said=said, frame=frame,
                            shop=shop_domain if shop_domain != SHOP else None))


def _wait_until_settled(domain: str, legacy_id: int) -> bool:
    """True once every delivered webhook is processed and the order's work is done."""
    deadline = time.monotonic() + SETTLE_WAIT
    while time.monotonic() < deadline:
        with db.transaction() as conn:
            received = conn.execute("SELECT count(*) AS n FROM webhook_events WHERE shop_domain = %s AND status = 'received'",
                                    (domain,)).fetchone()["n"]
            dirty = conn.execute(f"""SELECT count(*) AS n FROM orders o JOIN shops s ON s.id = o.shop_id
                                     WHERE s.domain = %s AND o.legacy_id = %s AND {orders.DIRTY}""",
                                 (domain, legacy_id)).fetchone()["n"]
        if not received and not dirty:
            return True
        time.sleep(0.15)
    return False


@bp.get("/id-token")
def id_token():
    """What App Bridge's `shopify.idToken()` gives the pages: a fresh ID token for the shop."""
    shop = shops.valid_shop_domain(request.args.get("shop") or SHOP)
    if not shop:
        abort(400, "missing or invalid shop")
    resp = jsonify(id_token=_id_token(shop))
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.after_app_request
def frame_in_the_panel(response):
    """The embedded pages allow only Shopify's admin as their parent; in the sandbox the panel,
    on the app's own origin, is that admin."""
    csp = response.headers.get("Content-Security-Policy", "")
    if "frame-ancestors" in csp and "'self'" not in csp:
        response.headers["Content-Security-Policy"] = csp.replace("frame-ancestors", "frame-ancestors 'self'", 1) \
            .replace("'self' 'none'", "'self'")
    return response
