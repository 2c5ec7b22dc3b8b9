"""Kennitala (Icelandic national id number of a person or a company): normalise and validate.

Icelandic shops collect it in checkout's Company field (Payday help H87); an invalid one is
ignored and the customer is found by e-mail instead, so this module only has to say whether a
value can be trusted as a kennitala at all.

The rules, from Registers Iceland (Þjóðskrá), https://www.skra.is/folk/eg-i-thjodskra/um-kennitolur
("Útreikningur vartölu"): ten digits DDMMYY RR P C. P, the check digit, is Modulus 11 over the
first eight digits with weights 3,2,7,6,5,4,3,2: P = 11 - (sum mod 11), where 11 gives 0 and 10
is never issued. C is the century: "Aftasti stafur í kennitölu er 8, 9 eða 0" (1800s, 1900s,
2000s) -- so 8 is accepted as well as the 9 and 0 everyone remembers (en.wikipedia.org/wiki/
Icelandic_identification_number agrees on 9/0 and the check digit). Companies add 40 to the
day, so the first digit is 0-7 (the same shape the Payday WooCommerce plugin's checkout field
accepts: `[0-7]\\d[01]\\d{3}-?\\d{3}[09]`).

Since 18 February 2026 Registers Iceland issues new kennitölur WITHOUT a computed check digit
("Kennitölur án vartölu", https://www.skra.is/folk/eg-i-thjodskra/um-kennitolur/kennitolur-an-vartolu):
a real, newly issued kennitala may fail the Modulus 11 test. `normalize` therefore has a
relaxed mode (`check_digit=False`) that keeps every structural check but not the check digit;
the Payday client uses it to ask Payday whether it already knows the number, and only creates a
customer from a number that also passes the check digit (see payday.find_or_create_customer).
"""
from __future__ import annotations

WEIGHTS = (3, 2, 7, 6, 5, 4, 3, 2)
CENTURY_DIGITS = "890"
_SEPARATORS = str.maketrans("", "", " -\u00a0\u2010\u2011\u2012\u2013")


def compute_check_digit(first_eight: str) -> int | None:
    """The Modulus 11 check digit for eight digits, or None when the rule yields 10 (such a
    sequence is never issued with a check digit)."""
    remainder = sum(int(d) * w for d, w in zip(first_eight, WEIGHTS)) % 11
    digit = (11 - remainder) % 11
    return None if digit == 10 else digit


def normalize(value, *, check_digit: bool = True) -> str | None:
    """The ten digits of a kennitala written with or without a dash/spaces, or None when the
    value is not one. `check_digit=False` skips only the Modulus 11 test (numbers issued from
    2026-02-18 need not pass it)."""
    if not isinstance(value, str):
        return None
    digits = value.strip().translate(_SEPARATORS)
    if len(digits) != 10 or not digits.isascii() or not digits.isdigit():
        return None
    day, month = int(digits[0:2]), int(digits[2:4])
    if not (1 <= day <= 31 or 41 <= day <= 71) or not 1 <= month <= 12:
        return None
    if digits[9] not in CENTURY_DIGITS:
        return None
    if check_digit and _check_digit_of(digits) != int(digits[8]):
        return None
    return digits


def is_valid(value, *, check_digit: bool = True) -> bool:
    return normalize(value, check_digit=check_digit) is not None


def has_valid_check_digit(value) -> bool:
    """True when a structurally valid kennitala also passes the Modulus 11 test."""
    digits = normalize(value, check_digit=False)
    return digits is not None and _check_digit_of(digits) == int(digits[8])


def is_company(value) -> bool:
    digits = normalize(value, check_digit=False)
    return digits is not None and digits[0] in "4567"


def _check_digit_of(digits: str) -> int | None:
    return compute_check_digit(digits[:8])
