"""Kennitala rules: shape, Modulus 11 check digit, century digit, and the 2026 numbers without
a check digit."""
from __future__ import annotations

import pytest

from shopify_app import kennitala


@pytest.mark.parametrize("written, digits", [
    ("120174-3399", "1201743399"),      # Wikipedia's example
    ("1201603389", "1201603389"),       # Registers Iceland's worked example (120160-33 -> 8)
    (" 120160 3389 ", "1201603389"),
    ("500101-2880", "5001012880"),      # a company: day + 40
    ("6703152079", "6703152079"),
    ("3112992049", "3112992049"),
])
def test_valid_kennitolur_normalise_to_ten_digits(written, digits):
    assert kennitala.normalize(written) == digits
    assert kennitala.is_valid(written)


@pytest.mark.parametrize("value", [
    None, "", "12345", "120174-33999", "12017433990", "120174-339X", "1201743389",  # wrong check digit
    "1201743395",    # century digit 5
    "1213743399",    # month 13
    "0001743399",    # day 00
    "8201743399",    # day 82: neither a person nor a company
    "１２０１７４３３９９",  # full-width digits
    1201743399,      # a number loses leading zeros: only strings are kennitölur
    "120174/3399",
])
def test_invalid_values_are_refused(value):
    assert kennitala.normalize(value) is None
    assert not kennitala.is_valid(value)


def test_check_digit_is_eleven_minus_the_weighted_sum_mod_eleven():
    # 1*3 + 2*2 + 0*7 + 1*6 + 6*5 + 0*4 + 3*3 + 3*2 = 58; 58 mod 11 = 3; 11 - 3 = 8
    assert kennitala.compute_check_digit("12016033") == 8
    # remainder 0 gives 11, written as 0
    assert kennitala.compute_check_digit("31129920") == 4 and kennitala.compute_check_digit("00000000") == 0


def test_a_sequence_whose_check_digit_would_be_ten_is_never_valid():
    assert kennitala.compute_check_digit("45021020") is None
    assert not any(kennitala.is_valid(f"45021020{d}9") for d in range(10))


def test_century_digit_may_be_8_9_or_0():
    assert kennitala.is_valid("1201743399") and kennitala.is_valid("1201743390")
    assert kennitala.is_valid("1201743398")  # 1800s: Registers Iceland lists 8 too
    assert not any(kennitala.is_valid(f"120174339{d}") for d in "1234567")


def test_numbers_issued_without_a_check_digit_pass_only_the_relaxed_check():
    # Registers Iceland's published test numbers that fail the check digit on purpose (2026).
    for issued in ("2811913049", "0209804299", "0404044400", "1005148220", "2412198560", "3003228340"):
        assert kennitala.normalize(issued) is None
        assert kennitala.normalize(issued, check_digit=False) == issued
        assert not kennitala.has_valid_check_digit(issued)
    assert kennitala.has_valid_check_digit("120174-3399")
    assert kennitala.normalize("12345", check_digit=False) is None


def test_companies_are_told_from_people():
    assert kennitala.is_company("500101-2880")
    assert not kennitala.is_company("120174-3399")
    assert not kennitala.is_company("garbage")
