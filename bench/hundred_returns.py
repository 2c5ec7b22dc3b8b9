"""Measure a 100-return run through the real system (stand-ins, HTTP webhooks, two real RQ
worker processes, Postgres): Shopify GraphQL calls and Payday calls per document, and the time
from a return's close to its credit invoice in Payday.

    .venv/bin/python bench/hundred_returns.py [--returns 100] [--workers 2] [--latency]

(bench/pipeline.py is the same burst over many shops, with CPU time and several runs.)
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h  # noqa: E402

from shopify_app import db  # noqa: E402
from shopify_app.sandbox.player import SHOP  # noqa: E402


def main() -> int:
    parser = h.parser(__doc__, runs=False)
    parser.add_argument("--returns", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with h.fresh_system(latency=args.latency) as (system, _settings):
        h.install_shop(system, SHOP)
        orders = h.open_and_refunded(system, SHOP, args.returns)
        with h.unthrottled(system):
            system.shopify.deliver()
            h.run_workers(args.workers, "hundred-setup")   # the returns are open and refunded; nothing to invoice yet
        mark = h.Mark(system)

        closed_at = h.close_returns(system, orders)
        started = time.monotonic()
        system.shopify.deliver()
        h.run_workers(args.workers, "bench-worker")
        elapsed = time.monotonic() - started

        with db.transaction() as conn:
            docs = conn.execute("SELECT return_gid, sent_at FROM documents WHERE status = 'sent'").fetchall()
        calls = mark.since()
        lags = sorted((d["sent_at"] - closed_at[d["return_gid"]]).total_seconds() for d in docs)
        n = len(docs)
        invoices = len(system.payday.invoices)
    print(f"returns closed: {args.returns}; credit invoices in Payday: {n} (unique invoices: {invoices})")
    print(f"wall time, close webhooks delivered to last invoice: {elapsed:.1f} s with {args.workers} worker processes")
    print(f"Shopify GraphQL calls: {calls.graphql} ({calls.graphql / max(n, 1):.2f} per document), "
          f"THROTTLED {calls.throttled}")
    print(f"Payday calls: {calls.payday_total} ({calls.payday_total / max(n, 1):.2f} per document): "
          + ", ".join(f"{k} {v}" for k, v in sorted(calls.payday.items())))
    if lags:
        print(f"close -> invoice: median {statistics.median(lags):.2f} s, p95 {lags[int(0.95 * (n - 1))]:.2f} s, "
              f"max {lags[-1]:.2f} s")
    h.result({"returns": args.returns, "documents": n, "workers": args.workers, "latency": args.latency,
              "wall_seconds": h.r(elapsed), "graphql_calls_per_document": h.r(calls.graphql / max(n, 1)),
              "throttled": calls.throttled, "payday_calls_per_document": h.r(calls.payday_total / max(n, 1)),
              "close_to_invoice_median_s": h.r(statistics.median(lags)) if lags else None,
              "close_to_invoice_p95_s": h.r(lags[int(0.95 * (n - 1))]) if lags else None})
    return 0 if n == args.returns else 1


if __name__ == "__main__":
    sys.exit(main())
