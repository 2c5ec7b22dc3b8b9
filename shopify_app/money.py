"""Exact money: Decimal only, rounded to the currency's own minor unit (ISK has none)."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

# ISO 4217 minor units where they are not 2.
_MINOR_UNITS = {"ISK": 0, "JPY": 0, "KRW": 0, "CLP": 0, "VND": 0, "HUF": 2, "KWD": 3, "BHD": 3, "OMR": 3, "JOD": 3, "TND": 3}

ZERO = Decimal(0)


def minor_units(currency: str) -> int:
    return _MINOR_UNITS.get(currency.upper(), 2)


def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_units(currency))


def to_money(value, currency: str) -> Decimal:
    """A decimal string or number as money of this currency, rounded half up (as receipts are)."""
    return Decimal(str(value)).quantize(quantum(currency), rounding=ROUND_HALF_UP)


def plain(value: Decimal) -> Decimal:
    """Without trailing zeros or an exponent: 24.00 → 24, 10 → 10 (not 1E+1), 25.50 → 25.5."""
    value = value.normalize()
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value


def gross(amount: Decimal, tax: Decimal, taxes_included: bool) -> Decimal:
    """The VAT-inclusive amount of a Shopify money field given 'as listed'."""
    return amount if taxes_included else amount + tax


def vat_of_gross(gross_amount: Decimal, rate: Decimal, currency: str) -> Decimal:
    return to_money(gross_amount * rate / (Decimal(100) + rate), currency)


def split(total: Decimal, weights: list[Decimal], currency: str) -> list[Decimal]:
    """Split `total` in proportion to `weights` so the parts add up to `total` exactly
    (largest remainder: the leftover minor units go to the largest fractions)."""
    if not weights:
        return []
    base = sum(weights)
    if base == 0:
        return [total] + [ZERO] * (len(weights) - 1)
    q = quantum(currency)
    raw = [total * w / base for w in weights]
    parts = [(r / q).to_integral_value(rounding="ROUND_DOWN" if total >= 0 else "ROUND_UP") * q for r in raw]
    leftover = int((total - sum(parts)) / q)
    order = sorted(range(len(raw)), key=lambda i: abs(raw[i] - parts[i]), reverse=True)
    step = q if leftover >= 0 else -q
    for i in order[:abs(leftover)]:
        parts[i] += step
    return parts
