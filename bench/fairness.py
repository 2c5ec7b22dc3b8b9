"""Fairness between shops: shop A has a backlog of closed returns queued, then shop B closes
one return. How long does B wait for its credit invoice?

    .venv/bin/python bench/fairness.py [--backlog 2000] [--workers 2] [--runs 3] [--latency]

Each run starts from empty tables. A's returns and B's return are opened and refunded (worked
off before the measurement, without Shopify's throttling; then every cost bucket starts full);
A's returns are closed and their webhooks delivered to the web process (gunicorn, as the
Procfile runs it), which queues them; the worker processes start, and once A's first invoice
is in the Payday stand-in, B's return is closed.

- other_shop_seconds: from just before B's close webhook is sent to B's invoice existing in
  the Payday stand-in (polled every 10 ms in B's Payday company).
- also: how much of A's backlog was still waiting when B closed, and when A's last invoice came.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h  # noqa: E402

POLL = 0.01


def wait_for(predicate, timeout: float, workers) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        if workers is not None and all(w.poll() is not None for w in workers):
            return predicate()
        time.sleep(POLL)
    return True


def one_run(args) -> dict:
    shop_a, shop_b = h.shop_domain(0), h.shop_domain(1)
    with h.fresh_system(latency=args.latency) as (system, _settings), h.Web("fairness-web") as web:
        for domain in (shop_a, shop_b):
            h.install_shop(system, domain, web.url)
        orders_a = h.open_and_refunded(system, shop_a, args.backlog)
        [order_b] = h.open_and_refunded(system, shop_b, 1, first_number=9000)
        with h.unthrottled(system):
            system.shopify.deliver()
            h.run_workers(args.workers, "fairness-setup")

        h.close_returns(system, orders_a)
        system.shopify.deliver()            # A's backlog is queued
        mark = h.Mark(system)
        cpu = h.Cpu(web_pid=web.pid, pg_pid=h.postgres_pid(), rd_pid=h.redis_pid())
        started = time.monotonic()
        workers = h.spawn_workers(args.workers, "fairness")
        if not wait_for(lambda: h.invoices_of(system, shop_a) >= 1, 600, workers):
            raise RuntimeError("shop A's first invoice never came")
        a_done_before = h.invoices_of(system, shop_a)

        b_closed = time.monotonic()
        h.close_returns(system, [order_b])
        system.shopify.deliver()            # B's close webhook: stored and queued by the web
        b_queued = time.monotonic()
        restarted = 0
        if not wait_for(lambda: h.invoices_of(system, shop_b) >= 1, 3600, workers):
            # The burst workers found the queues empty before B's job (a backlog this small
            # drains in no time): B's job is waiting alone, so one more worker takes it.
            restarted = 1
            workers += h.spawn_workers(1, "fairness-late")
            wait_for(lambda: h.invoices_of(system, shop_b) >= 1, 600, workers)
        b_invoiced = time.monotonic()
        a_done_at_b = h.invoices_of(system, shop_a)
        wait_for(lambda: h.invoices_of(system, shop_a) >= args.backlog, 3600, workers)
        a_last = time.monotonic()
        h.wait_workers(workers)
        calls = mark.since()
        cpu.delta()
        a_total = h.invoices_of(system, shop_a)
        b_total = h.invoices_of(system, shop_b)
    return {
        "other_shop_seconds": b_invoiced - b_closed if b_total else None,
        "webhook_seconds": b_queued - b_closed,
        "backlog_waiting_at_b_close": args.backlog - a_done_before,
        "a_invoiced_before_b": a_done_at_b,
        "a_drain_seconds": a_last - started, "a_invoices": a_total, "b_invoices": b_total,
        "late_worker": restarted, "graphql_calls": calls.graphql, "throttled": calls.throttled,
        "payday_calls": calls.payday_total, "foreign_cpu_share": cpu.foreign_share(),
    }


def main() -> int:
    p = h.parser(__doc__)
    p.add_argument("--backlog", type=int, default=2000, help="shop A's closed returns queued before B closes")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    print(f"fairness: shop A backlog {args.backlog}, {args.workers} worker processes, "
          f"{'latency Shopify 150 ms / Payday 250 ms' if args.latency else 'no latency'}, {args.runs} run(s)")
    runs = []
    for n in range(args.runs):
        run = one_run(args)
        runs.append(run)
        print(f"run {n + 1}: B closed with {run['backlog_waiting_at_b_close']} of A's returns waiting; B's invoice "
              f"after {run['other_shop_seconds']:.2f} s (its webhook answered in {run['webhook_seconds'] * 1000:.0f} ms), "
              f"when A had {run['a_invoiced_before_b']} of {args.backlog} invoiced; A drained in "
              f"{run['a_drain_seconds']:.1f} s; GraphQL calls {run['graphql_calls']} "
              f"(THROTTLED {run['throttled']}), Payday calls {run['payday_calls']}; other processes used "
              f"{run['foreign_cpu_share']:.0%} of the machine" + (" (a late worker took B's job)" if run["late_worker"] else ""))
    print()
    s = h.print_spread("other_shop_seconds", [x["other_shop_seconds"] for x in runs], "s")
    a = h.print_spread("A's backlog drained in", [x["a_drain_seconds"] for x in runs], "s", digits=1)
    share = h.print_spread("share of A's backlog done before B",
                           [x["a_invoiced_before_b"] / args.backlog for x in runs])
    ok = all(x["b_invoices"] == 1 and x["a_invoices"] == args.backlog for x in runs)
    h.result({
        "backlog": args.backlog, "workers": args.workers, "runs": args.runs, "latency": args.latency,
        "other_shop_seconds": h.r(s["median"]),
        "spread": {"other_shop_seconds": {k: h.r(v) for k, v in s.items()},
                   "a_drain_seconds": {k: h.r(v) for k, v in a.items()},
                   "a_share_done_before_b": {k: h.r(v) for k, v in share.items()}},
        "per_run": [{k: h.r(v) if isinstance(v, float) else v for k, v in x.items()} for x in runs],
        "all_invoiced": ok,
    })
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
