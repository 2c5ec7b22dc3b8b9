"""The invoicing rules of ../shared/spec/RULES.md, one test each, on the pure decision core."""
from __future__ import annotations

from decimal import Decimal

import pytest

from shopify_app import manual
from shopify_app.decision import decide
from tests.factories import D, a_return, at, item, order, refund, sale, shipping_line

R = "gid://shopify/Return/1"


def neutral(plan):
    return [(l.kind, l.sku, l.quantity, str(l.amount), str(l.vat_rate)) for l in plan.lines]


def state(decision, key=R):
    [case] = [c for c in decision.cases if c.key == key]
    return case.state, (case.reason.code if case.reason else None)


def test_R1_nothing_before_the_close():
    krus = item(1, "KRUS", 1990, 3)
    ret_refunds = [refund(1, lines=[(krus, 2)], return_id=R)]
    open_ = decide(order([krus], refunds=ret_refunds, returns=[a_return(1, lines=[(krus, 3)])]))
    assert open_.plans == () and state(open_) == ("open", "waiting_for_close")
    closed = decide(order([krus], refunds=ret_refunds, returns=[a_return(1, lines=[(krus, 3)], status="CLOSED", closed_minute=30)]))
    [plan] = closed.plans
    assert plan.key == "return-1" and plan.trigger == "return_close"


def test_R2_R3_refunds_before_the_close_merge_into_one_invoice():
    krus = item(1, "KRUS", 1990, 3)
    d = decide(order([krus], refunds=[refund(1, lines=[(krus, 2)], return_id=R, minute=10),
                                      refund(2, lines=[(krus, 1)], return_id=R, minute=20)],
                     returns=[a_return(1, lines=[(krus, 3)], status="CLOSED", closed_minute=30)]))
    [plan] = d.plans
    assert neutral(plan) == [("item", "KRUS", -3, "-5970", "24")]
    assert plan.total == D(-5970) and plan.refund_ids == ("gid://shopify/Refund/1", "gid://shopify/Refund/2")


def test_R4_a_refund_after_the_close_gets_its_own_invoice_and_the_first_is_untouched():
    krus = item(1, "KRUS", 1990, 3)
    ret = a_return(1, lines=[(krus, 3)], status="CLOSED", closed_minute=30)
    first = refund(1, lines=[(krus, 2)], return_id=R, minute=10)
    later = refund(2, lines=[(krus, 1)], return_id=R, minute=60)
    [plan] = decide(order([krus], refunds=[first], returns=[ret])).plans
    existing = {plan.key: frozenset(plan.refund_ids)}
    d = decide(order([krus], refunds=[first, later], returns=[ret]), existing)
    [second] = d.plans
    assert second.key == "refund-2" and second.trigger == "refund"
    assert neutral(second) == [("item", "KRUS", -1, "-1990", "24")]
    assert state(d) == ("documented", None)


def test_R4_late_processing_still_splits_at_the_close():
    krus = item(1, "KRUS", 1990, 3)
    d = decide(order([krus], refunds=[refund(1, lines=[(krus, 2)], return_id=R, minute=10),
                                      refund(2, lines=[(krus, 1)], return_id=R, minute=60)],
                     returns=[a_return(1, lines=[(krus, 3)], status="CLOSED", closed_minute=30)]))
    assert [(p.key, p.total) for p in d.plans] == [("return-1", D(-3980)), ("refund-2", D(-1990))]


def test_R5_return_shipping_fee_is_a_charged_line_that_reduces_the_credit():
    bolur = item(1, "BOLUR-M", 2500, 2)
    d = decide(order([bolur], refunds=[refund(1, lines=[(bolur, 2)], money=4500, return_id=R)],
                     returns=[a_return(1, lines=[(bolur, 2)], status="CLOSED", closed_minute=30, fee=500)]))
    [plan] = d.plans
    assert neutral(plan) == [("item", "BOLUR-M", -2, "-5000", "24"), ("return_shipping_fee", None, 1, "500", "24")]
    assert plan.total == D(-4500)


def test_R5_restocking_fee_is_its_own_charged_line():
    bolur = item(1, "BOLUR-M", 2500, 2)
    d = decide(order([bolur], refunds=[refund(1, lines=[(bolur, 2)], money=4500, return_id=R)],
                     returns=[a_return(1, lines=[(bolur, 2)], status="CLOSED", closed_minute=30, restocking_percent=10)]))
    [plan] = d.plans
    assert neutral(plan) == [("item", "BOLUR-M", -2, "-5000", "24"), ("restocking_fee", None, 1, "500", "24")]


def test_R5_a_return_shipping_fee_on_goods_at_two_rates_is_split_across_both():
    bok = item(1, "BOK", 3000, 1, rate="11")
    bolur = item(2, "BOLUR", 1000, 1, rate="24")
    d = decide(order([bok, bolur], refunds=[refund(1, lines=[(bok, 1), (bolur, 1)], money=3499, return_id=R)],
                     returns=[a_return(1, lines=[(bok, 1), (bolur, 1)], status="CLOSED", closed_minute=30, fee=501)]))
    [plan] = d.plans
    fees = [(l.kind, str(l.amount), str(l.vat_rate)) for l in plan.lines if l.kind == "return_shipping_fee"]
    # In proportion to the goods carried back at each rate, VAT included (1.000 : 3.000).
    assert fees == [("return_shipping_fee", "125", "24"), ("return_shipping_fee", "376", "11")]
    assert plan.total == D(-3499)


def test_F2_the_basis_is_vat_included_so_shops_with_and_without_vat_in_prices_split_alike():
    def split_of(taxes_included):
        # The same goods: 3.330 kr. at 11 % and 1.240 kr. at 24 %, VAT included.
        bok = item(1, "BOK", 3330 if taxes_included else 3000, 1, rate="11", taxes_included=taxes_included)
        bolur = item(2, "BOLUR", 1240 if taxes_included else 1000, 1, rate="24", taxes_included=taxes_included)
        [plan] = decide(order([bok, bolur], refunds=[refund(1, money=1000)], taxes_included=taxes_included)).plans
        return neutral(plan)
    assert split_of(True) == split_of(False) == [("adjustment", None, 1, "-271", "24"), ("adjustment", None, 1, "-729", "11")]


def test_R6_only_refunded_items_are_on_the_invoice():
    sokkar = item(1, "SOKKAR", 1200, 3)
    d = decide(order([sokkar], refunds=[refund(1, lines=[(sokkar, 1)], return_id=R)],
                     returns=[a_return(1, lines=[(sokkar, 3)], status="CLOSED", closed_minute=30)]))
    assert neutral(d.plans[0]) == [("item", "SOKKAR", -1, "-1200", "24")]


def test_R7_fee_only_invoice_once_the_fee_is_paid():
    jakki = item(1, "JAKKI", 15900, 1)
    ret = a_return(1, lines=[(jakki, 1)], status="CLOSED", closed_minute=30, fee=500)
    owed = decide(order([jakki], returns=[ret], outstanding=500))
    assert owed.plans == () and state(owed) == ("pending_settlement", "customer_owes")
    paid = decide(order([jakki], returns=[ret], transactions=[sale(15900), sale(500, n=2)]))
    assert neutral(paid.plans[0]) == [("return_shipping_fee", None, 1, "500", "24")]
    assert paid.plans[0].total == D(500)


def test_R8_nothing_refunded_and_no_fee_needs_no_invoice():
    jakki = item(1, "JAKKI", 15900, 1)
    d = decide(order([jakki], returns=[a_return(1, lines=[(jakki, 1)], status="CLOSED", closed_minute=30)]))
    assert d.plans == () and state(d) == ("none_needed", "nothing_refunded")


def test_E1_E2_E3_exchange_waits_for_settlement_then_shows_both_items_and_the_difference():
    skyrta_l = item(1, "SKYRTA-L", 6000, 1)
    skyrta_m = item(2, "SKYRTA-M", 5000, 1)
    ret = a_return(1, lines=[(skyrta_l, 1)], exchange=[skyrta_m], status="CLOSED", closed_minute=30)
    pending = decide(order([skyrta_l], refunds=[refund(1, money=1000, status="PENDING", return_id=R)], returns=[ret]))
    assert pending.plans == () and state(pending) == ("pending_settlement", "refund_pending")
    settled = decide(order([skyrta_l], refunds=[refund(1, money=1000, return_id=R)], returns=[ret]))
    [plan] = settled.plans
    assert plan.key == "exchange-1" and plan.trigger == "exchange_settled"
    assert neutral(plan) == [("item", "SKYRTA-L", -1, "-6000", "24"), ("exchange_item", "SKYRTA-M", 1, "5000", "24")]
    assert plan.total == D(-1000)


def test_E4_customer_owes_no_invoice_until_paid_and_settled():
    skor = item(1, "SKOR-40", 5000, 1)
    stigvel = item(2, "STIGVEL-40", 10000, 1)
    ret = a_return(1, lines=[(skor, 1)], exchange=[stigvel], status="CLOSED", closed_minute=30)
    assert state(decide(order([skor], returns=[ret], outstanding=5000))) == ("pending_settlement", "customer_owes")
    paying = decide(order([skor], returns=[ret], transactions=[sale(5000), sale(5000, status="PENDING", n=2)]))
    assert state(paying) == ("pending_settlement", "payment_pending")
    [plan] = decide(order([skor], returns=[ret], transactions=[sale(5000), sale(5000, n=2)])).plans
    assert plan.total == D(5000)


def test_E5_an_open_exchange_waits_for_the_merchant_to_close_it():
    skyrta_l, skyrta_m = item(1, "SKYRTA-L", 6000, 1), item(2, "SKYRTA-M", 5000, 1)
    d = decide(order([skyrta_l], refunds=[refund(1, money=1000, return_id=R)],
                     returns=[a_return(1, lines=[(skyrta_l, 1)], exchange=[skyrta_m])]))
    assert d.plans == () and state(d) == ("open", "waiting_for_close")


def test_F1_a_refund_without_a_return_gets_its_own_invoice_at_once_with_shipping():
    krus = item(1, "KRUS", 1990, 2)
    ship = shipping_line(1000)
    r = refund(1, lines=[(krus, 2)], shipping=[(ship, 1000)])
    [plan] = decide(order([krus], refunds=[r], shipping=ship)).plans
    assert plan.key == "refund-1" and plan.trigger == "refund" and plan.return_id is None
    assert neutral(plan) == [("item", "KRUS", -2, "-3980", "24"), ("shipping", None, -1, "-1000", "24")]


def test_F1_shipping_alone_can_be_refunded():
    krus = item(1, "KRUS", 1990, 2)
    ship = shipping_line(1000)
    [plan] = decide(order([krus], refunds=[refund(1, shipping=[(ship, 1000)])], shipping=ship)).plans
    assert neutral(plan) == [("shipping", None, -1, "-1000", "24")]


def test_F2_amount_no_line_explains_becomes_an_adjustment_at_the_orders_rate():
    krus = item(1, "KRUS", 1990, 2)
    [plan] = decide(order([krus], refunds=[refund(1, money=700)])).plans
    assert neutral(plan) == [("adjustment", None, 1, "-700", "24")]


def test_F2_changed_amount_keeps_the_lines_and_balances_to_the_money():
    krus = item(1, "KRUS", 1990, 2)
    [plan] = decide(order([krus], refunds=[refund(1, lines=[(krus, 2)], money=3000)])).plans
    assert neutral(plan) == [("item", "KRUS", -2, "-3980", "24"), ("adjustment", None, 1, "980", "24")]
    assert plan.total == D(-3000)


def test_F2_adjustment_splits_across_rates_in_proportion_to_the_order():
    bok = item(1, "BOK", 3000, 1, rate="11")
    bolur = item(2, "BOLUR", 1000, 1, rate="24")
    [plan] = decide(order([bok, bolur], refunds=[refund(1, money=1001)])).plans
    assert neutral(plan) == [("adjustment", None, 1, "-250", "24"), ("adjustment", None, 1, "-751", "11")]
    assert plan.total == D(-1001)


def test_F3_a_refund_whose_money_failed_produces_nothing():
    krus = item(1, "KRUS", 1990, 2)
    d = decide(order([krus], refunds=[refund(1, lines=[(krus, 1)], status="FAILURE")]))
    assert d.plans == () and state(d, "gid://shopify/Refund/1") == ("none_needed", "refund_failed")


def test_F3_a_pending_refund_without_a_return_is_invoiced_when_made():
    krus = item(1, "KRUS", 1990, 2)
    [plan] = decide(order([krus], refunds=[refund(1, lines=[(krus, 1)], status="PENDING")])).plans
    assert plan.total == D(-1990)


def test_F3_a_refund_invoiced_while_pending_that_fails_later_is_corrected_once():
    krus = item(1, "KRUS", 1990, 2)
    pending = refund(1, lines=[(krus, 1)], status="PENDING")
    [first] = decide(order([krus], refunds=[pending])).plans
    existing = {first.key: frozenset(first.refund_ids)}
    failed = refund(1, lines=[(krus, 1)], status="FAILURE")
    [correction] = decide(order([krus], refunds=[failed]), existing).plans
    assert (correction.key, correction.trigger, correction.corrects) == ("correction-1", "correction", "refund-1")
    assert neutral(correction) == [("item", "KRUS", 1, "1990", "24")] and correction.total == -first.total
    existing[correction.key] = frozenset(correction.refund_ids)
    assert decide(order([krus], refunds=[failed]), existing).plans == ()   # exactly once


def test_F3_a_failed_refund_inside_a_return_is_left_off_its_invoice():
    krus = item(1, "KRUS", 1990, 3)
    d = decide(order([krus], refunds=[refund(1, lines=[(krus, 1)], status="FAILURE", return_id=R),
                                      refund(2, lines=[(krus, 1)], return_id=R, minute=20)],
                     returns=[a_return(1, lines=[(krus, 2)], status="CLOSED", closed_minute=30)]))
    assert neutral(d.plans[0]) == [("item", "KRUS", -1, "-1990", "24")]


def test_C1_partial_credit_covers_only_some_products_and_quantities():
    krus, bolur = item(1, "KRUS", 1990, 3), item(2, "BOLUR", 2500, 2)
    [plan] = decide(order([krus, bolur], refunds=[refund(1, lines=[(bolur, 1)])])).plans
    assert neutral(plan) == [("item", "BOLUR", -1, "-2500", "24")]


def test_C2_taxes_excluded_shop_credits_the_vat_inclusive_amount():
    krus = item(1, "KRUS", 1000, 2, taxes_included=False)
    r = refund(1, lines=[(krus, 2)], money=2480)
    # As listed (without VAT) the lines are worth 2000; the facts reader adds their VAT.
    r = r.__class__(**{**r.__dict__, "lines": (r.lines[0].__class__(krus.id, 2, D(2480)),)})
    [plan] = decide(order([krus], refunds=[r], taxes_included=False)).plans
    assert neutral(plan) == [("item", "KRUS", -2, "-2480", "24")]


def test_D3_an_unsupported_vat_rate_fails_with_the_reason():
    vara = item(1, "VARA", 1000, 1, rate="25.5")
    d = decide(order([vara], refunds=[refund(1, lines=[(vara, 1)])]))
    assert d.plans == ()
    [case] = d.cases
    assert case.state == "failed" and case.reason.as_dict() == {
        "code": "unsupported_vat_rate", "params": {"rate": "25.5", "item": "VARA"}}


def test_D3_mixed_vat_rates_each_line_keeps_its_own():
    bok, bolur = item(1, "BOK", 3990, 1, rate="11"), item(2, "BOLUR", 2500, 1, rate="24")
    [plan] = decide(order([bok, bolur], refunds=[refund(1, lines=[(bok, 1), (bolur, 1)])])).plans
    assert neutral(plan) == [("item", "BOK", -1, "-3990", "11"), ("item", "BOLUR", -1, "-2500", "24")]


def test_D3_zero_rated_items_carry_zero_vat():
    gjafabref = item(1, "GJAFA", 5000, 1, rate="0")
    [plan] = decide(order([gjafabref], refunds=[refund(1, lines=[(gjafabref, 1)])])).plans
    assert neutral(plan) == [("item", "GJAFA", -1, "-5000", "0")]


def test_D1_deciding_again_yields_the_same_keys_and_lines():
    krus = item(1, "KRUS", 1990, 3)
    facts = order([krus], refunds=[refund(1, lines=[(krus, 2)], return_id=R)],
                  returns=[a_return(1, lines=[(krus, 3)], status="CLOSED", closed_minute=30)])
    assert decide(facts) == decide(facts)
    [plan] = decide(facts).plans
    assert decide(facts, {plan.key: frozenset(plan.refund_ids)}).plans == ()


def test_two_returns_on_one_order_each_get_their_own_invoice():
    krus, bolur = item(1, "KRUS", 1990, 1), item(2, "BOLUR", 2500, 1)
    r2 = "gid://shopify/Return/2"
    d = decide(order([krus, bolur],
                     refunds=[refund(1, lines=[(krus, 1)], return_id=R), refund(2, lines=[(bolur, 1)], return_id=r2, minute=40)],
                     returns=[a_return(1, lines=[(krus, 1)], status="CLOSED", closed_minute=30),
                              a_return(2, lines=[(bolur, 1)], status="CLOSED", closed_minute=50)]))
    assert [(p.key, p.total) for p in d.plans] == [("return-1", D(-1990)), ("return-2", D(-2500))]


def test_R9_a_reopened_return_waits_and_its_next_close_credits_the_new_refunds_together_without_the_fee_again():
    krus = item(1, "KRUS", 1990, 3)
    first = refund(1, lines=[(krus, 1)], money=1490, return_id=R, minute=10)
    existing = {"return-1": frozenset({first.id})}   # the first close: the item, less a 500 kr. fee
    later = [refund(2, lines=[(krus, 1)], return_id=R, minute=60), refund(3, lines=[(krus, 1)], return_id=R, minute=70)]
    reopened = decide(order([krus], refunds=[first, *later], returns=[a_return(1, lines=[(krus, 3)], fee=500)]),
                      existing)
    assert reopened.plans == () and state(reopened) == ("open", "waiting_for_close")
    closed_again = decide(order([krus], refunds=[first, *later], returns=[
        a_return(1, lines=[(krus, 3)], status="CLOSED", closed_minute=90, fee=500)]), existing, reopened=frozenset({R}))
    [plan] = closed_again.plans
    assert (plan.key, plan.trigger, plan.refund_ids) == ("return-1-2", "return_close", tuple(r.id for r in later))
    assert neutral(plan) == [("item", "KRUS", -2, "-3980", "24")]   # no fee line: it was charged already


def test_R10_a_fee_larger_than_the_refund_waits_until_the_customer_has_paid_and_it_settled():
    bolur = item(1, "BOLUR-M", 2500, 1)
    owes = decide(order([bolur], refunds=[refund(1, lines=[(bolur, 1)], money=0, return_id=R)],
                        returns=[a_return(1, lines=[(bolur, 1)], status="CLOSED", closed_minute=30, fee=3000)],
                        outstanding="500"))
    assert owes.plans == () and state(owes) == ("pending_settlement", "customer_owes")
    paid = decide(order([bolur], refunds=[refund(1, lines=[(bolur, 1)], money=0, return_id=R)],
                        returns=[a_return(1, lines=[(bolur, 1)], status="CLOSED", closed_minute=30, fee=3000)],
                        transactions=[sale(2500), sale(500, n=2)]))
    [plan] = paid.plans
    assert plan.total == D(500)


def test_D5_a_line_refunded_in_two_refunds_is_one_invoice_line_rounded_once():
    # Excluding VAT, 3 × 333,33 EUR at 24 %: Shopify counts VAT per order line, so the refunds'
    # VAT-inclusive amounts (2 and 1 of 3) add up to the line's, and the invoice has one line.
    bolur = item(1, "BOLUR", "333.33", 3, taxes_included=False, currency="EUR")
    refunds = [refund(1, lines=[(bolur, 2)], money="826.66", return_id=R, minute=10),
               refund(2, lines=[(bolur, 1)], money="413.33", return_id=R, minute=12)]
    [plan] = decide(order([bolur], refunds=refunds, taxes_included=False, currency="EUR",
                          returns=[a_return(1, lines=[(bolur, 3)], status="CLOSED", closed_minute=30)])).plans
    assert [(l.kind, l.quantity) for l in plan.lines if l.kind == "item"] == [("item", -3)]
    assert plan.total == D("-1239.99")


def test_declined_return_needs_nothing():
    krus = item(1, "KRUS", 1990, 1)
    d = decide(order([krus], returns=[a_return(1, lines=[(krus, 1)], status="DECLINED")]))
    assert state(d) == ("none_needed", "return_declined")


def test_total_always_equals_the_money_that_moved():
    krus, bok = item(1, "KRUS", 1990, 3), item(2, "BOK", 3990, 2, rate="11")
    for money in (1, 999, 5970, 12000):
        [plan] = decide(order([krus, bok], refunds=[refund(1, lines=[(krus, 1), (bok, 1)], money=money)])).plans
        assert plan.total == -Decimal(money)


def test_R6_items_taken_back_without_money_are_not_invoiced():
    krus = item(1, "KRUS", 1990, 2)
    d = decide(order([krus], refunds=[refund(1, lines=[(krus, 1)], money=0)]))
    assert d.plans == () and state(d, "gid://shopify/Refund/1") == ("none_needed", "nothing_refunded")


def test_D3_the_refused_rate_reads_as_people_write_it():
    vara = item(1, "VARA", 1000, 1, rate="10")
    [case] = decide(order([vara], refunds=[refund(1, lines=[(vara, 1)])])).cases
    assert case.reason.as_dict()["params"]["rate"] == "10"


# Where automatic invoicing begins (the shop's install, or an earlier date the merchant chose):
# what happened before it was the bookkeeper's to handle, and a second credit invoice for it
# would be a duplicate in the books.

def test_start_a_return_closed_before_the_start_is_not_invoiced_but_a_later_refund_is():
    krus = item(1, "KRUS", 1990, 3)
    ret = a_return(1, lines=[(krus, 3)], status="CLOSED", closed_minute=30)
    first, later = refund(1, lines=[(krus, 2)], return_id=R, minute=10), refund(2, lines=[(krus, 1)], return_id=R, minute=60)
    closed_before = decide(order([krus], refunds=[first], returns=[ret]), start=at(45))
    assert closed_before.plans == () and state(closed_before) == ("none_needed", "before_start")
    assert closed_before.cases[0].reason.as_dict()["params"]["date"] == at(45).isoformat()
    with_later = decide(order([krus], refunds=[first, later], returns=[ret]), start=at(45))
    assert [(p.key, p.total) for p in with_later.plans] == [("refund-2", D(-1990))]
    assert state(with_later) == ("documented", None)
    # closed after the start: the refunds before the close belong to it, whenever they were made
    assert [p.key for p in decide(order([krus], refunds=[first], returns=[ret]), start=at(20)).plans] == ["return-1"]


def test_start_a_refund_without_a_return_before_the_start_is_not_invoiced():
    krus = item(1, "KRUS", 1990, 2)
    old, new = refund(1, lines=[(krus, 1)], minute=10), refund(2, lines=[(krus, 1)], minute=60)
    d = decide(order([krus], refunds=[old, new]), start=at(30))
    assert [p.key for p in d.plans] == ["refund-2"]
    assert state(d, old.id) == ("none_needed", "before_start") and state(d, new.id) == ("documented", None)


def test_start_an_exchange_counts_from_its_settlement():
    skyrta_l, skyrta_m = item(1, "SKYRTA-L", 6000, 1), item(2, "SKYRTA-M", 5000, 1)
    ret = a_return(1, lines=[(skyrta_l, 1)], exchange=[skyrta_m], status="CLOSED", closed_minute=30)
    settled_later = order([skyrta_l], refunds=[refund(1, money=1000, return_id=R, minute=60)], returns=[ret])
    assert [p.key for p in decide(settled_later, start=at(45)).plans] == ["exchange-1"]
    assert state(decide(settled_later, start=at(90))) == ("none_needed", "before_start")


def test_start_does_not_undo_a_document_that_exists():
    krus = item(1, "KRUS", 1990, 3)
    ret = a_return(1, lines=[(krus, 3)], status="CLOSED", closed_minute=30)
    first = refund(1, lines=[(krus, 2)], return_id=R, minute=10)
    d = decide(order([krus], refunds=[first], returns=[ret]), {"return-1": frozenset([first.id])}, start=at(45))
    assert d.plans == () and state(d) == ("documented", None)


# C6, credit by hand: for money returned outside Shopify's refunds.

def test_C6_a_hand_made_credit_cannot_credit_what_a_shopify_refund_already_did_and_is_unpaid():
    krus, bok = item(1, "KRUS", 1990, 3), item(2, "BOK", 3990, 1, rate="11")
    taken_back = refund(2, lines=[(bok, 1)], money=0)          # R6: no money, so still creditable by hand
    o = order([krus, bok], refunds=[refund(1, lines=[(krus, 2)]), taken_back])
    assert manual.creditable(o) == {krus.id: 1, bok.id: 1}
    token = "t" * 20
    with pytest.raises(manual.InvalidCredit) as refused:
        manual.build(o, {"1": 2}, False, token)
    assert refused.value.code == "bad_quantity" and refused.value.params["max"] == 1
    plan = manual.build(o, {"1": 1, "2": 1}, False, token)
    assert neutral(plan) == [("item", "KRUS", -1, "-1990", "24"), ("item", "BOK", -1, "-3990", "11")]
    assert plan.gateway is None   # booked unpaid: the money did not go back through the sale's gateway


def test_C6_a_hand_made_credit_cannot_credit_again_what_an_earlier_hand_credit_did():
    krus, ship = item(1, "KRUS", 1990, 3), shipping_line(1000)
    o = order([krus], shipping=ship)
    first = manual.build(o, {"1": 2}, True, "a" * 20)
    earlier = manual.HandCredits(items={krus.id: 2}, shipping={ship.id: D("1000")})
    assert {line.source for line in first.lines} == {krus.id, ship.id}   # what makes `earlier` readable later
    assert manual.creditable(o, earlier) == {krus.id: 1} and manual.creditable_shipping(o, earlier) == {}
    with pytest.raises(manual.InvalidCredit) as refused:
        manual.build(o, {"1": 2}, False, "b" * 20, earlier)
    assert refused.value.code == "bad_quantity" and refused.value.params["max"] == 1
    with pytest.raises(manual.InvalidCredit) as refused:
        manual.build(o, {"1": 1}, True, "b" * 20, earlier)
    assert refused.value.code == "shipping_credited"
    assert neutral(manual.build(o, {"1": 1}, False, "b" * 20, earlier)) == [("item", "KRUS", -1, "-1990", "24")]


def test_C6_shipping_a_shopify_refund_gave_back_is_not_credited_again_by_hand():
    krus, ship = item(1, "KRUS", 1990, 1), shipping_line(1000)
    partly = order([krus], shipping=ship, refunds=[refund(1, shipping=[(ship, 400)])])
    assert manual.creditable_shipping(partly) == {ship.id: D("600")}
    assert neutral(manual.build(partly, {}, True, "c" * 20)) == [("shipping", None, -1, "-600", "24")]
    fully = order([krus], shipping=ship, refunds=[refund(1, shipping=[(ship, 1000)])])
    with pytest.raises(manual.InvalidCredit) as refused:
        manual.build(fully, {}, True, "c" * 20)
    assert refused.value.code == "shipping_credited"


def test_the_return_reasons_go_on_the_close_and_exchange_invoices_not_on_a_later_refunds():
    from dataclasses import replace

    def with_reasons(ret, *reasons):
        return replace(ret, lines=tuple(replace(rl, reason=r) for rl, r in zip(ret.lines, reasons)))

    krus, bolur, bok = item(1, "KRUS", 1990, 3), item(2, "BOLUR-M", 2500, 1), item(3, "BOK", 3990, 1)
    ret = with_reasons(a_return(1, lines=[(krus, 2), (bolur, 1), (bok, 1)], status="CLOSED", closed_minute=30),
                       "Of lítið", None, "Gallað")
    before = refund(1, lines=[(krus, 2)], return_id=R, minute=10)
    after = refund(2, lines=[(bolur, 1)], return_id=R, minute=60)
    d = decide(order([krus, bolur, bok], refunds=[before, after], returns=[ret]))
    assert [(p.key, p.reason) for p in d.plans] == [("return-1", "Of lítið, Gallað"), ("refund-2", None)]

    same = with_reasons(ret, "Gallað", "Gallað", None)
    [plan] = decide(order([krus, bolur, bok], refunds=[before], returns=[same])).plans
    assert plan.reason == "Gallað"   # each reason once

    skyrta_l, skyrta_m = item(4, "SKYRTA-L", 6000, 1), item(5, "SKYRTA-M", 5000, 1)
    exchange = with_reasons(a_return(1, lines=[(skyrta_l, 1)], exchange=[skyrta_m], status="CLOSED", closed_minute=30),
                            "Of stórt")
    [plan] = decide(order([skyrta_l], refunds=[refund(1, money=1000, return_id=R)], returns=[exchange])).plans
    assert (plan.trigger, plan.reason) == ("exchange_settled", "Of stórt")

    first = refund(1, lines=[(krus, 1)], return_id=R, minute=10)
    again = refund(2, lines=[(krus, 1)], return_id=R, minute=60)
    reopened = with_reasons(a_return(1, lines=[(krus, 2)], status="CLOSED", closed_minute=90), "Of lítið")
    [plan] = decide(order([krus], refunds=[first, again], returns=[reopened]),
                    {"return-1": frozenset({first.id})}, reopened=frozenset({R})).plans
    assert (plan.key, plan.reason) == ("return-1-2", "Of lítið")   # R9: the next close
