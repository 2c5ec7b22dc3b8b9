"""A burst of returns closed at once over many shops, through the real system: the Shopify
stand-in sends the close webhooks to the web process (gunicorn, as the Procfile runs it), real
RQ worker processes turn them into credit invoices in the Payday stand-in. Counts calls at the
stand-ins and CPU time of the processes that do the work.

    .venv/bin/python bench/pipeline.py [--returns 2000] [--shops 20] [--workers 2] [--runs 3]
                                       [--grouped] [--lifecycle-returns 20] [--latency]

Each run starts from empty tables: the returns are opened and refunded (that work is done by
the workers before the burst, without Shopify's throttling, and not measured), then every
return is closed at once (the shops' closes interleaved; `--grouped`: shop by shop), each
shop's cost bucket full (the stand-in's 2,000 points, restored at 100 a second).

- cpu_ms_per_document: CPU of the worker processes (and the work horses they fork; less what
  starting and stopping those processes costs, measured on an empty queue just before) + the
  Postgres server's processes (the postmaster's whole tree) + the gunicorn processes, from the
  first close webhook to the last worker's exit, divided by the documents created. The
  stand-ins run in this process and are left out (shown apart as "bench"), as are Redis and
  other people's processes on the machine ("others"; `foreign_cpu_share` says how busy they
  kept the machine, which slows the wall times).
- throttled, requested_cost_max, graphql_calls_per_invoice, payday_calls_per_document: counted
  at the stand-ins during the burst.
- graphql_calls_per_invoice_lifecycle: on a fresh system, `--lifecycle-returns` returns are
  played step by step (request, approve, refund, close; each step delivered and worked off
  before the next), and every GraphQL call at the stand-in is counted, divided by the invoices.
"""
from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h  # noqa: E402


def burst(args) -> dict:
    with h.fresh_system(latency=args.latency) as (system, _settings), h.Web("pipeline-web") as web:
        domains = [h.shop_domain(i) for i in range(args.shops)]
        for domain in domains:
            h.install_shop(system, domain, web.url)
        per_shop = [h.open_and_refunded(system, domain, args.returns // args.shops
                                        + (1 if i < args.returns % args.shops else 0))
                    for i, domain in enumerate(domains)]
        if args.grouped:   # shop by shop: each merchant closes all of theirs at once
            orders = [order for shop_orders in per_shop for order in shop_orders]
        else:              # the shops' closes interleaved
            orders = [order for row in itertools.zip_longest(*per_shop) for order in row if order is not None]
        with h.unthrottled(system):
            system.shopify.deliver()
            setup = h.run_workers(args.workers, "pipeline-setup")   # open and refunded: nothing to invoice yet
        before_docs = h.sent_documents()

        startup = h.worker_startup_cpu(args.workers)   # the queues are empty now
        h.close_returns(system, orders)
        mark = h.Mark(system)
        pg_before = h.pg_counters()
        cpu = h.Cpu(web_pid=web.pid, pg_pid=h.postgres_pid(), rd_pid=h.redis_pid())
        started = time.monotonic()
        system.shopify.deliver()
        delivered = time.monotonic()
        workers = h.spawn_workers(args.workers, "pipeline-burst")
        codes, rss = zip(*h.wait_workers_rss(workers))
        ended = time.monotonic()
        used = cpu.delta()
        used["workers"] = max(0.0, used["workers"] - startup)
        calls = mark.since()
        pg = h.pg_delta(pg_before, h.pg_counters())
        docs = h.sent_documents() - before_docs
        invoices = len(system.payday.invoices)

    work = sum(used[k] or 0 for k in ("workers", "postgres", "web"))
    per_doc = lambda v: None if v is None or not docs else v / docs  # noqa: E731
    return {
        "returns": len(orders), "documents": docs, "invoices_in_payday": invoices, "worker_exit_codes": list(codes),
        "worker_peak_rss_mb": max(rss),
        "setup_seconds": setup, "deliver_seconds": delivered - started, "burst_seconds": ended - started,
        "documents_per_second": docs / (ended - started),
        "cpu_seconds": used, "worker_startup_cpu_seconds": startup, "cpu_ms_per_document": per_doc(work * 1000),
        "cpu_ms_per_document_by_part": {k: per_doc(None if v is None else v * 1000) for k, v in used.items()},
        "documents_per_cpu_second": docs / work if work else None,
        "foreign_cpu_share": cpu.foreign_share(),
        "throttled": calls.throttled, "requested_cost_max": calls.requested_cost_max,
        "actual_cost_per_invoice": per_doc(calls.actual_cost),
        "graphql_calls": calls.graphql, "graphql_calls_per_invoice": per_doc(calls.graphql),
        "token_requests": calls.token,
        "postgres_sessions_per_document": per_doc(pg.get("sessions")),
        "postgres_transactions_per_document": per_doc(pg.get("transactions")),
        "payday_calls": dict(calls.payday), "payday_calls_per_document": per_doc(calls.payday_total),
    }


LIFECYCLE = [
    ("request", {"do": "return_request", "return": "R1", "lines": h.RETURN_LINES}),
    ("approve", {"do": "return_open", "return": "R1"}),
    ("refund", {"do": "refund", "return": "R1", "lines": h.RETURN_LINES}),
    ("close", {"do": "return_close", "return": "R1"}),
]


def lifecycle(args) -> dict:
    """Each step applied to every order, delivered, and worked off by the workers; GraphQL and
    Payday calls counted per step."""
    n_shops = max(1, min(args.shops, args.lifecycle_returns))
    with h.fresh_system(latency=args.latency) as (system, _settings):
        domains = [h.shop_domain(i) for i in range(n_shops)]
        for domain in domains:
            h.install_shop(system, domain)
        store = system.shopify.store
        orders = [store.create_order(domains[i % n_shops], {**h.ORDER, "name": f"#{3000 + i}"})
                  for i in range(args.lifecycle_returns)]
        steps = {}
        for name, step in LIFECYCLE:
            for order in orders:
                store.apply(order, step)
            mark = h.Mark(system)
            webhooks = len(system.shopify.deliver())
            h.run_workers(args.workers, f"pipeline-lifecycle-{name}")
            calls = mark.since()
            steps[name] = {"webhooks": webhooks, "graphql": calls.graphql, "payday": calls.payday_total,
                           "throttled": calls.throttled}
        docs = h.sent_documents()
    graphql = sum(s["graphql"] for s in steps.values())
    return {"returns": len(orders), "documents": docs, "steps": steps, "graphql_calls": graphql,
            "graphql_calls_per_invoice_lifecycle": graphql / docs if docs else None,
            "payday_calls_per_document_lifecycle": sum(s["payday"] for s in steps.values()) / docs if docs else None}


def main() -> int:
    p = h.parser(__doc__)
    p.add_argument("--returns", type=int, default=2000)
    p.add_argument("--shops", type=int, default=20)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--grouped", action="store_true",
                   help="close the returns shop by shop (default: the shops' closes interleaved)")
    p.add_argument("--lifecycle-returns", type=int, default=20, help="returns played step by step (0: skip)")
    args = p.parse_args()
    args.shops = max(1, min(args.shops, args.returns))

    print(f"burst: {args.returns} returns over {args.shops} shops ({'shop by shop' if args.grouped else 'interleaved'}), "
          f"{args.workers} worker processes, "
          f"{'latency Shopify 150 ms / Payday 250 ms' if args.latency else 'no latency'}, {args.runs} run(s)")
    runs = []
    for n in range(args.runs):
        run = burst(args)
        runs.append(run)
        by_part = ", ".join(f"{k} {v:.1f}" for k, v in run["cpu_ms_per_document_by_part"].items() if v is not None)
        print(f"run {n + 1}: {run['documents']} documents ({run['invoices_in_payday']} invoices in Payday) in "
              f"{run['burst_seconds']:.1f} s (webhooks delivered in {run['deliver_seconds']:.1f} s); "
              f"CPU ms/document: {run['cpu_ms_per_document']:.1f} [{by_part}]; GraphQL {run['graphql_calls']}, "
              f"THROTTLED {run['throttled']}, max requested cost {run['requested_cost_max']}; Payday "
              + ", ".join(f"{k} {v}" for k, v in sorted(run["payday_calls"].items())))

    print()
    s = {}
    s["burst_seconds"] = h.print_spread("burst wall time (s)", [x["burst_seconds"] for x in runs], digits=1)
    s["documents_per_second"] = h.print_spread("documents per wall second", [x["documents_per_second"] for x in runs])
    s["cpu_ms_per_document"] = h.print_spread("CPU ms per document", [x["cpu_ms_per_document"] for x in runs],
                                              digits=1)
    s["documents_per_cpu_second"] = h.print_spread("documents per CPU second",
                                                   [x["documents_per_cpu_second"] for x in runs])
    for part in ("workers", "postgres", "web", "redis", "bench", "others"):
        s[f"cpu_ms_per_document_{part}"] = h.print_spread(
            f"  of which {part}" if part not in ("redis", "bench", "others") else f"  ({part}, not counted)",
            [x["cpu_ms_per_document_by_part"][part] for x in runs], digits=1)
    s["foreign_cpu_share"] = h.print_spread("other processes' share of the machine", [x["foreign_cpu_share"]
                                                                                     for x in runs])
    s["graphql_calls_per_invoice"] = h.print_spread("GraphQL calls per invoice (burst)",
                                                    [x["graphql_calls_per_invoice"] for x in runs])
    s["payday_calls_per_document"] = h.print_spread("Payday calls per document (burst)",
                                                    [x["payday_calls_per_document"] for x in runs])
    s["postgres_sessions_per_document"] = h.print_spread(
        "Postgres sessions opened per document", [x["postgres_sessions_per_document"] for x in runs])
    s["postgres_transactions_per_document"] = h.print_spread(
        "Postgres transactions per document", [x["postgres_transactions_per_document"] for x in runs], digits=1)
    s["actual_cost_per_invoice"] = h.print_spread("actual query cost per invoice (burst)",
                                                  [x["actual_cost_per_invoice"] for x in runs], digits=0)
    s["worker_peak_rss_mb"] = h.print_spread("worker peak RSS (MB)", [x["worker_peak_rss_mb"] for x in runs],
                                             digits=0)
    s["throttled"] = h.print_spread("THROTTLED answers (burst)", [x["throttled"] for x in runs], digits=0)
    s["requested_cost_max"] = h.print_spread("max requested query cost", [x["requested_cost_max"] for x in runs],
                                             digits=0)

    life = None
    if args.lifecycle_returns > 0:
        life = lifecycle(args)
        print(f"\nlifecycle: {life['returns']} returns played step by step -> {life['documents']} documents")
        for name, step in life["steps"].items():
            print(f"  {name:8} webhooks {step['webhooks']:>5}  GraphQL calls {step['graphql']:>5}  "
                  f"Payday calls {step['payday']:>5}  THROTTLED {step['throttled']}")
        if life["graphql_calls_per_invoice_lifecycle"] is not None:
            print(f"GraphQL calls per invoice over a return's life: {life['graphql_calls_per_invoice_lifecycle']:.2f}")

    med = lambda key: h.r(s[key]["median"])  # noqa: E731
    ok = all(x["documents"] == x["returns"] for x in runs) and (life is None or life["documents"] == life["returns"])
    h.result({
        "returns": args.returns, "shops": args.shops, "grouped": args.grouped, "workers": args.workers,
        "runs": args.runs,
        "latency": args.latency,
        "cpu_ms_per_document": med("cpu_ms_per_document"),
        "documents_per_cpu_second": med("documents_per_cpu_second"),
        "throttled": int(max(x["throttled"] for x in runs)),
        "requested_cost_max": int(max(x["requested_cost_max"] for x in runs)),
        "graphql_calls_per_invoice": med("graphql_calls_per_invoice"),
        "graphql_calls_per_invoice_lifecycle": h.r(life and life["graphql_calls_per_invoice_lifecycle"]),
        "payday_calls_per_document": med("payday_calls_per_document"),
        "worker_peak_rss_mb": int(max(x["worker_peak_rss_mb"] for x in runs)),
        "burst_seconds": med("burst_seconds"), "documents_per_second": med("documents_per_second"),
        "cpu_ms_per_document_by_part": {p: med(f"cpu_ms_per_document_{p}") for p in
                                        ("workers", "postgres", "web", "redis", "bench", "others")},
        "foreign_cpu_share": med("foreign_cpu_share"),
        "spread": {k: {kk: h.r(vv) for kk, vv in v.items()} for k, v in s.items()},
        "documents": [x["documents"] for x in runs],
        "lifecycle_steps": life and life["steps"],
        "all_invoiced": ok,
    })
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
