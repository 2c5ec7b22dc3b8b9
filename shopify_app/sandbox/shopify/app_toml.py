"""What the app's shopify.app.toml tells Shopify: the scopes it requests and the webhooks it
subscribes to. The stand-in reads the same file the app deploys, so a topic the toml drops is a
topic the stand-in stops delivering (docs/SHOPIFY_MODEL.md, "What a real shop withholds and limits").

- Requested scopes: `[access_scopes] scopes`, comma-separated.
- Restricted scopes: Shopify grants `read_all_orders` only once it has approved the app's request
  for it (https://shopify.dev/docs/api/admin-graphql/latest/objects/Order, note on the 60 days),
  so a new shop's grant is the requested scopes without it.
- Subscriptions: each `[[webhooks.subscriptions]]` with `topics` (optional `include_fields`,
  dotted for nested fields, https://shopify.dev/docs/apps/build/webhooks/customize/modify-payloads)
  or `compliance_topics`.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

TOML = Path(__file__).resolve().parents[3] / "shopify.app.toml"
RESTRICTED_SCOPES = frozenset({"read_all_orders"})


@dataclass(frozen=True)
class Subscription:
    """One `[[webhooks.subscriptions]]` entry. `include_fields` None means the whole payload."""

    topics: frozenset
    include_fields: tuple | None = None
    compliance: bool = False
    uri: str | None = None


def scope_list(scopes) -> list[str]:
    """"a,b" or ["a", "b"] → ["a", "b"] (stripped, empties and repeats dropped, order kept)."""
    items = scopes.split(",") if isinstance(scopes, str) else list(scopes or ())
    out: list[str] = []
    for item in (str(s).strip() for s in items):
        if item and item not in out:
            out.append(item)
    return out


def _load(path: Path | None) -> dict:
    path = path or TOML
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}


def requested_scopes(path: Path | None = None) -> list[str]:
    return scope_list(((_load(path).get("access_scopes") or {}).get("scopes")) or "")


def default_grant(requested) -> list[str]:
    """What Shopify grants a new installation: the requested scopes less the restricted ones."""
    return [s for s in scope_list(requested) if s not in RESTRICTED_SCOPES]


def subscriptions(path: Path | None = None) -> list[Subscription]:
    found = []
    for entry in (_load(path).get("webhooks") or {}).get("subscriptions") or []:
        fields = entry.get("include_fields")
        if entry.get("topics"):
            found.append(Subscription(frozenset(entry["topics"]), tuple(fields) if fields else None,
                                      False, entry.get("uri")))
        if entry.get("compliance_topics"):
            found.append(Subscription(frozenset(entry["compliance_topics"]), None, True, entry.get("uri")))
    return found


def subscription_list(value) -> list[Subscription]:
    """Subscriptions from what a test gives: Subscription objects, dicts shaped like the toml's
    entries, or plain topic names (one subscription for all of them)."""
    out, plain = [], []
    for item in value or ():
        if isinstance(item, Subscription):
            out.append(item)
        elif isinstance(item, str):
            plain.append(item)
        elif isinstance(item, dict):
            if item.get("topics"):
                fields = item.get("include_fields")
                out.append(Subscription(frozenset(item["topics"]), tuple(fields) if fields else None, False,
                                        item.get("uri")))
            if item.get("compliance_topics"):
                out.append(Subscription(frozenset(item["compliance_topics"]), None, True, item.get("uri")))
        else:
            raise TypeError(f"a subscription is a Subscription, a dict or a topic, not {item!r}")
    if plain:
        out.append(Subscription(frozenset(plain)))
    return out


def cut(payload, fields) -> dict:
    """`payload` with only the `include_fields` paths ("id", "line_items.sku"); a dotted path
    descends into objects and into every element of a list."""
    tree: dict = {}
    for path in fields:
        node = tree
        for part in str(path).split("."):
            node = node.setdefault(part, {})
    return _cut(payload, tree)


def _cut(value, tree: dict):
    if not tree:
        return value
    if isinstance(value, list):
        return [_cut(v, tree) for v in value]
    if not isinstance(value, dict):
        return value
    return {k: _cut(value[k], sub) for k, sub in tree.items() if k in value}
