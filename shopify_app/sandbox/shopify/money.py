"""Money for the Shopify stand-in: Decimal amounts rounded to the currency's minor unit, and VAT."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# ISO 4217 currencies whose minor unit is not the hundredth.
_MINOR_UNITS = {"ISK": 0, "JPY": 0, "KRW": 0, "CLP": 0, "VND": 0, "XAF": 0, "XOF": 0, "XPF": 0,
                "UGX": 0, "PYG": 0, "RWF": 0, "BIF": 0, "DJF": 0, "GNF": 0, "KMF": 0, "VUV": 0,
                "BHD": 3, "JOD": 3, "KWD": 3, "OMR": 3, "TND": 3, "LYD": 3, "IQD": 3}
ZERO = Decimal(0)


class MoneyError(ValueError):
    pass


def decimal(value) -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise MoneyError(f"not an amount: {value!r}") from exc
    if not amount.is_finite():
        raise MoneyError(f"not an amount: {value!r}")
    return amount


def minor_units(currency: str) -> int:
    return _MINOR_UNITS.get(currency, 2)


def rounded(amount: Decimal, currency: str) -> Decimal:
    # Half up: how VAT is rounded on Icelandic invoices (Shopify's own rule is not published).
    return amount.quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUND_HALF_UP)


def text(amount: Decimal, currency: str) -> str:
    """The amount as Shopify's Decimal/Money strings carry it: ISK "5000", EUR "49.90"."""
    return format(rounded(amount, currency) + 0, "f")  # + 0 turns -0 into 0


def vat_in(listed: Decimal, rate: Decimal, taxes_included: bool, currency: str) -> Decimal:
    """The VAT of an amount as listed: G×r/(100+r) of a gross price, net×r/100 of a net one."""
    share = rate / (100 + rate) if taxes_included else rate / 100
    return rounded(listed * share, currency)
