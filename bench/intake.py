"""Webhook intake throughput: the web process as the Procfile runs it (gunicorn with
gunicorn.conf.py), hit with signed returns/close webhooks (valid HMAC, each a new event) over
64 keep-alive connections; nothing works the queue meanwhile.

    .venv/bin/python bench/intake.py [--requests 20000 | --duration SECONDS] [--concurrency 64] [--runs 3]
                                     [--rate REQUESTS_PER_SECOND]

Two loads, both over 64 keep-alive connections:
- saturation (the default): each connection sends its next webhook as soon as the last is
  answered, so the figure is the most the web process takes; latency there is queueing by
  construction (64 connections / throughput, Little's law).
- `--rate R`: Shopify's way, webhooks arrive at R a second whatever the answers do, spread
  evenly over the connections; a request's latency counts from when it was due to be sent, so a
  slow answer that delays the next send is counted in full (no coordinated omission).

Each run starts from empty tables and a new gunicorn. The client is asyncio over raw HTTP/1.1
(the standard library only: httpx/aiohttp are not dependencies), in this process, on the same
machine: its CPU is shown apart (`client_cpu_ms_per_request`). A warm-up of 2 x concurrency
requests comes first and is not counted.

- requests_per_second: answered requests / wall time; p50_ms, p99_ms: per request, from
  writing it to reading the whole answer.
- cpu_ms_per_request: gunicorn + Postgres + Redis processes, per request.
"""
from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h  # noqa: E402

from shopify_app import db, jobqueue  # noqa: E402
from shopify_app.sandbox.system import SANDBOX_SECRET  # noqa: E402
from shopify_app.webhooks import sign  # noqa: E402

SHOPS = [h.shop_domain(i) for i in range(20)]


def webhook(n: int, port: int) -> bytes:
    """One signed returns/close delivery, as Shopify sends it (tests/helpers.py's headers)."""
    return_id, order_id = 5_000_000 + n, 6_000_000 + n
    body = json.dumps({"id": return_id, "admin_graphql_api_id": f"gid://shopify/Return/{return_id}",
                       "order_id": order_id, "status": "closed"}, separators=(",", ":")).encode()
    headers = {
        "Host": f"127.0.0.1:{port}",
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "X-Shopify-Topic": "returns/close",
        "X-Shopify-Hmac-Sha256": sign(body, SANDBOX_SECRET),
        "X-Shopify-Shop-Domain": SHOPS[n % len(SHOPS)],
        "X-Shopify-API-Version": "2026-10",
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-Event-Id": str(uuid.uuid4()),
        "X-Shopify-Triggered-At": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
    }
    head = "POST /webhooks HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode() + body


class Load:
    def __init__(self, port: int, total: int | None, duration: float | None, first: int = 0,
                 rate: float | None = None):
        self.port, self.total, self.duration, self.rate = port, total, duration, rate
        self.next = first
        self.end = first + total if total is not None else None
        self.latencies: list[float] = []
        self.statuses: Counter = Counter()
        self.errors = 0
        self.reconnects = 0

    def take(self, deadline: float | None) -> int | None:
        if self.end is not None and self.next >= self.end:
            return None
        if deadline is not None and time.monotonic() >= deadline:
            return None
        n, self.next = self.next, self.next + 1
        return n

    async def connection(self, index: int, concurrency: int, deadline: float | None) -> None:
        reader = writer = None
        interval = concurrency / self.rate if self.rate else 0.0
        due = time.perf_counter() + index * interval / concurrency
        while True:
            n = self.take(deadline)
            if n is None:
                break
            request = webhook(n, self.port)
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                if self.rate:
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                    started, due = due, due + interval
                else:
                    started = time.perf_counter()
                writer.write(request)
                status, close = await read_response(reader)
                self.latencies.append(time.perf_counter() - started)
                self.statuses[status] += 1
                if close:
                    writer.close()
                    reader = writer = None
                    self.reconnects += 1
            except (ConnectionError, asyncio.IncompleteReadError, OSError):
                self.errors += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                self.reconnects += 1
        if writer is not None:
            writer.close()

    async def run(self, concurrency: int) -> float:
        deadline = time.monotonic() + self.duration if self.duration else None
        started = time.perf_counter()
        await asyncio.gather(*(self.connection(i, concurrency, deadline) for i in range(concurrency)))
        return time.perf_counter() - started


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    status_line = await reader.readuntil(b"\r\n")
    status = int(status_line.split(b" ", 2)[1])
    length, close = 0, False
    while True:
        line = await reader.readuntil(b"\r\n")
        if line == b"\r\n":
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
    if length:
        await reader.readexactly(length)
    return status, close


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, max(0, int(round(q * len(sorted_values))) - 1))]


def one_run(args) -> dict:
    with h.fresh_system() as (system, _settings), h.Web("intake-web") as web:
        warm = Load(web.port, 2 * args.concurrency, None)
        asyncio.run(warm.run(args.concurrency))
        mark = h.Mark(system)
        pg_before = h.pg_counters()
        cpu = h.Cpu(web_pid=web.pid, pg_pid=h.postgres_pid(), rd_pid=h.redis_pid())
        load = Load(web.port, None if args.duration else args.requests, args.duration, first=warm.end,
                    rate=args.rate)
        wall = asyncio.run(load.run(args.concurrency))
        used = cpu.delta()
        pg = h.pg_delta(pg_before, h.pg_counters())
        calls = mark.since()
        with db.transaction() as conn:
            stored = conn.execute("SELECT count(*) AS n FROM webhook_events WHERE status = 'received'").fetchone()["n"]
        queued = jobqueue.queue().count
    done = len(load.latencies)
    lat = sorted(load.latencies)
    work = sum(used[k] or 0 for k in ("web", "postgres", "redis"))
    return {
        "requests": done, "wall_seconds": wall, "requests_per_second": done / wall,
        "p50_ms": percentile(lat, 0.50) * 1000, "p99_ms": percentile(lat, 0.99) * 1000, "max_ms": lat[-1] * 1000,
        "statuses": dict(load.statuses), "errors": load.errors, "reconnects": load.reconnects,
        "stored": stored, "queued_jobs": queued,
        "cpu_ms_per_request": work * 1000 / done,
        "cpu_ms_per_request_by_part": {k: None if v is None else v * 1000 / done for k, v in used.items()},
        "client_cpu_ms_per_request": used["bench"] * 1000 / done,
        "foreign_cpu_share": cpu.foreign_share(),
        "postgres_transactions_per_request": pg["transactions"] / done if "transactions" in pg else None,
        "graphql_calls": calls.graphql, "payday_calls": calls.payday_total,
    }


def main() -> int:
    p = h.parser(__doc__, latency=False)
    p.add_argument("--requests", type=int, default=20000, help="webhooks per run (default 20000)")
    p.add_argument("--duration", type=float, default=None, help="instead of --requests: seconds per run")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--rate", type=float, default=None,
                   help="webhooks a second, sent on schedule (default: as fast as answered)")
    args = p.parse_args()
    what = f"{args.duration:g} s" if args.duration else f"{args.requests} webhooks"
    how = f"at {args.rate:g}/s on schedule" if args.rate else "as fast as answered"
    print(f"intake: {what} per run over {args.concurrency} connections to gunicorn (gunicorn.conf.py), "
          f"{how}, {args.runs} run(s)")
    runs = []
    for n in range(args.runs):
        run = one_run(args)
        runs.append(run)
        by_part = ", ".join(f"{k} {v:.2f}" for k, v in run["cpu_ms_per_request_by_part"].items() if v is not None)
        print(f"run {n + 1}: {run['requests']} requests in {run['wall_seconds']:.1f} s = "
              f"{run['requests_per_second']:.0f}/s; p50 {run['p50_ms']:.1f} ms, p99 {run['p99_ms']:.1f} ms, max "
              f"{run['max_ms']:.0f} ms; statuses {run['statuses']}, errors {run['errors']}; stored {run['stored']}, "
              f"queued jobs {run['queued_jobs']}; CPU ms/request {run['cpu_ms_per_request']:.2f} [{by_part}]")
    print()
    s = {
        "requests_per_second": h.print_spread("requests per second", [x["requests_per_second"] for x in runs],
                                              digits=0),
        "p50_ms": h.print_spread("p50 (ms)", [x["p50_ms"] for x in runs], digits=1),
        "p99_ms": h.print_spread("p99 (ms)", [x["p99_ms"] for x in runs], digits=1),
        "cpu_ms_per_request": h.print_spread("CPU ms per request (web+pg+redis)",
                                             [x["cpu_ms_per_request"] for x in runs]),
        "client_cpu_ms_per_request": h.print_spread("  (client, not counted)",
                                                    [x["client_cpu_ms_per_request"] for x in runs]),
        "foreign_cpu_share": h.print_spread("other processes' share of the machine",
                                            [x["foreign_cpu_share"] for x in runs]),
    }
    ok = all(set(x["statuses"]) == {200} and not x["errors"] for x in runs)
    h.result({
        "requests": args.requests if not args.duration else None, "duration": args.duration,
        "concurrency": args.concurrency, "rate": args.rate, "runs": args.runs,
        "requests_per_second": h.r(s["requests_per_second"]["median"], 1),
        "p99_ms": h.r(s["p99_ms"]["median"], 2), "p50_ms": h.r(s["p50_ms"]["median"], 2),
        "cpu_ms_per_request": h.r(s["cpu_ms_per_request"]["median"]),
        "foreign_cpu_share": h.r(s["foreign_cpu_share"]["median"]),
        "spread": {k: {kk: h.r(vv) for kk, vv in v.items()} for k, v in s.items()},
        "per_run": [{k: (h.r(v) if isinstance(v, float) else v) for k, v in x.items()
                     if k not in ("cpu_ms_per_request_by_part",)} for x in runs],
        "all_200": ok,
    })
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
