"""Measure a 100-return run through the real system (stand-ins, HTTP webhooks, two real RQ
worker processes, Postgres): Shopify GraphQL calls and Payday calls per document, and the time
from a return's close to its credit invoice in Payday.

    .venv/bin/python bench/hundred_returns.py [--returns 100] [--workers 2]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shopify_app import db  # noqa: E402
from shopify_app.sandbox.player import SHOP, install_shop, run_worker_until_idle  # noqa: E402
from shopify_app.sandbox.system import running_system  # noqa: E402

ORDER = {"customer": {"email": "anna@example.is"}, "currency": "ISK", "taxes_included": True,
         "lines": [{"sku": "KRUS", "title": "Krús", "price": "1990", "quantity": 2, "tax_rate": "24"}],
         "payment": {"gateway": "shopify_payments", "status": "success"}}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--returns", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with running_system(database_name="skilvis_bench") as (system, _settings):
        install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
        store = system.shopify.store
        orders = []
        for n in range(args.returns):
            order = store.create_order(SHOP, {**ORDER, "name": f"#{2000 + n}"})
            store.apply(order, {"do": "return_open", "return": "R1", "lines": [{"sku": "KRUS", "quantity": 2}]})
            store.apply(order, {"do": "refund", "return": "R1", "lines": [{"sku": "KRUS", "quantity": 2}]})
            orders.append(order)
        system.shopify.deliver()
        run_worker_until_idle()   # the returns are open and refunded; nothing to invoice yet
        graphql_before = system.shopify.graphql_calls[SHOP]
        payday_before = len(system.payday.requests)

        closed_at = {}
        for order in orders:
            ret = store.apply(order, {"do": "return_close", "return": "R1"})
            closed_at[f"gid://shopify/Return/{ret.id}"] = ret.closed_at
        started = time.monotonic()
        system.shopify.deliver()
        workers = [subprocess.Popen([sys.executable, "worker.py", "--burst"], cwd=ROOT, env=dict(os.environ),
                                    stdout=subprocess.DEVNULL, stderr=open(ROOT / ".data" / f"bench-worker-{i}.log", "w"))
                   for i in range(args.workers)]
        for w in workers:
            w.wait()
        elapsed = time.monotonic() - started

        with db.transaction() as conn:
            docs = conn.execute("SELECT return_gid, sent_at FROM documents WHERE status = 'sent'").fetchall()
        graphql = system.shopify.graphql_calls[SHOP] - graphql_before
        payday_calls = Counter(f"{r['method']} {r['path'].split('/')[1]}" for r in system.payday.requests[payday_before:])
        lags = sorted((d["sent_at"] - closed_at[d["return_gid"]]).total_seconds() for d in docs)
        n = len(docs)
        print(f"returns closed: {args.returns}; credit invoices in Payday: {n} (unique invoices: {len(system.payday.invoices)})")
        print(f"wall time, close webhooks delivered to last invoice: {elapsed:.1f} s with {args.workers} worker processes")
        print(f"Shopify GraphQL calls: {graphql} ({graphql / max(n, 1):.2f} per document)")
        total_payday = sum(payday_calls.values())
        print(f"Payday calls: {total_payday} ({total_payday / max(n, 1):.2f} per document): "
              + ", ".join(f"{k} {v}" for k, v in sorted(payday_calls.items())))
        if lags:
            print(f"close -> invoice: median {statistics.median(lags):.2f} s, p95 {lags[int(0.95 * (n - 1))]:.2f} s, "
                  f"max {lags[-1]:.2f} s")
    return 0 if n == args.returns else 1


if __name__ == "__main__":
    sys.exit(main())
