"""The home page's server time with 100,000 cases of one shop (each with its order, most with a
document): the first page, a status filter, a page 90,000 rows deep (keyset), and searches.
Rows are made by SQL; the page is rendered by the real app (Flask's test client, so the time
is the server's own: auth, queries, template), against the embedded PostgreSQL.

    .venv/bin/python bench/status_page.py [--cases 100000] [--repeat 30] [--runs 3]

The rows are filled once (into empty tables); each run then times every request `--repeat`
times. The last line is `RESULT {json}`: `p95_ms_max` is the highest p95 among the requests
(each request's p95 being the median of its runs' p95s), `queries` each request's figures.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import harness  # noqa: E402
import jwt  # noqa: E402

from shopify_app import db, home, shops  # noqa: E402
from shopify_app.sandbox.system import SANDBOX_KEY, SANDBOX_SECRET, running_system  # noqa: E402

SHOP = "skilvis-bench.myshopify.com"

FILL = """
INSERT INTO orders (shop_id, order_gid, legacy_id, name, customer_name, customer_email, currency,
                    work_started_at, work_done_at)
SELECT %(shop)s, 'gid://shopify/Order/' || n, n, '#' || (1000 + n),
       (ARRAY['Anna', 'Jón', 'Guðrún', 'Sigurður', 'Helga', 'Ólafur'])[1 + n %% 6] || ' '
         || (ARRAY['Jónsdóttir', 'Sigurðsson', 'Ólafsdóttir', 'Magnússon'])[1 + n %% 4] || ' ' || n,
       'customer' || n || '@example.is', 'ISK', now(), now()
FROM generate_series(1, %(n)s) AS n;

INSERT INTO cases (shop_id, order_id, case_gid, kind, label, status, reason, amount, currency, updated_at)
SELECT %(shop)s, o.id, 'gid://shopify/Return/' || o.legacy_id,
       (ARRAY['return', 'return', 'exchange', 'refund'])[1 + o.legacy_id %% 4], o.name || '-R1',
       s.status,
       CASE s.status WHEN 'open' THEN '{"code": "waiting_for_close", "params": {}}'::jsonb
                     WHEN 'pending_settlement' THEN '{"code": "customer_owes", "params": {"amount": "1990", "currency": "ISK"}}'::jsonb
                     WHEN 'none_needed' THEN '{"code": "nothing_refunded", "params": {}}'::jsonb
                     WHEN 'failed' THEN '{"code": "payday_validation", "params": {"error": "Ógild gögn"}}'::jsonb END,
       -1990 * (1 + o.legacy_id %% 5), 'ISK',
       now() - make_interval(secs => o.legacy_id * 37)
FROM orders o
CROSS JOIN LATERAL (SELECT CASE WHEN o.legacy_id %% 100 = 0 THEN 'failed'
                                WHEN o.legacy_id %% 100 < 3 THEN 'processing'
                                WHEN o.legacy_id %% 100 < 6 THEN 'pending_settlement'
                                WHEN o.legacy_id %% 100 < 16 THEN 'open'
                                WHEN o.legacy_id %% 100 < 26 THEN 'none_needed'
                                ELSE 'created' END AS status) s
WHERE o.shop_id = %(shop)s;

INSERT INTO documents (shop_id, order_id, case_id, doc_key, trigger, lines, total, currency, gateway, reference,
                       status, accounting_id, accounting_number, last_error, last_error_kind)
SELECT c.shop_id, c.order_id, c.id, 'return-' || c.id, 'return_close',
       '[{"kind": "item", "description": "Krús", "sku": "KRUS", "quantity": -1, "amount": "-1990", "vat_rate": "24"}]',
       c.amount, 'ISK', 'shopify_payments', c.label,
       CASE c.status WHEN 'created' THEN 'sent' WHEN 'failed' THEN 'failed' ELSE 'claimed' END,
       CASE WHEN c.status = 'created' THEN 'inv-' || c.id END, CASE WHEN c.status = 'created' THEN (10000 + c.id)::text END,
       CASE WHEN c.status = 'failed' THEN 'Ógild gögn' END, CASE WHEN c.status = 'failed' THEN 'validation' END
FROM cases c WHERE c.shop_id = %(shop)s AND c.status IN ('created', 'failed', 'processing');
"""


def id_token() -> str:
    now = int(time.time())
    return jwt.encode({"iss": f"https://{SHOP}/admin", "dest": f"https://{SHOP}", "aud": SANDBOX_KEY, "sub": "1",
                       "exp": now + 3600, "nbf": now - 1, "iat": now - 1, "jti": "bench", "sid": "bench"},
                      SANDBOX_SECRET, algorithm="HS256")


def measure(client, params: dict, repeat: int) -> tuple[list[float], int]:
    query = {"embedded": "1", "shop": SHOP, "id_token": id_token(), "locale": "is", **params}
    times, rows = [], 0
    for i in range(repeat + 2):
        started = time.perf_counter()
        resp = client.get("/", query_string=query)
        elapsed = (time.perf_counter() - started) * 1000
        assert resp.status_code == 200, resp.status_code
        if i >= 2:   # the first two warm the caches and the pool
            times.append(elapsed)
        rows = resp.get_data(as_text=True).count("<s-table-row data-case-id=")
    return times, rows


def explain(shop_id: int, cases) -> None:
    """EXPLAIN ANALYZE of the listing query each request runs (home.list_cases's SQL)."""
    captured = []
    real = db.transaction

    class Spy:
        def __init__(self, conn):
            self.conn = conn

        def execute(self, sql, params=None):
            if "FROM cases c" in str(sql) and "LIMIT" in str(sql):
                captured.append((sql, params))
            return self.conn.execute(sql, params)

    from contextlib import contextmanager

    @contextmanager
    def spying():
        with real() as conn:
            yield Spy(conn)

    home.db.transaction = spying
    try:
        for label, params in cases:
            captured.clear()
            home.list_cases(shop_id, status=params.get("status"), q=params.get("q"), cursor=params.get("after"))
            sql, values = captured[-1]
            with real() as conn:
                plan = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", values).fetchall()
            print(f"\n--- {label}")
            print("\n".join(r["QUERY PLAN"] for r in plan))
    finally:
        home.db.transaction = real


def main() -> int:
    parser = harness.parser(__doc__, latency=False)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--explain", action="store_true", help="print each listing query's plan")
    args = parser.parse_args()
    harness.machine_lock()
    with running_system(database_name=harness.BENCH_DATABASE) as (system, settings):
        from shopify_app import create_app

        shop = shops.save_tokens(SHOP, shops.Tokens(access_token="shpat_bench", scope="read_orders,read_returns"))
        started = time.monotonic()
        with db.transaction() as conn:
            for statement in FILL.split(";\n"):
                if statement.strip():
                    conn.execute(statement, {"shop": shop["id"], "n": args.cases})
            for table in ("orders", "cases", "documents"):
                conn.execute(f"ANALYZE {table}")
            counts = conn.execute("""SELECT (SELECT count(*) FROM cases) AS cases, (SELECT count(*) FROM orders) AS orders,
                                            (SELECT count(*) FROM documents) AS documents""").fetchone()
            deep = conn.execute("""SELECT updated_at, id FROM cases WHERE shop_id = %s
                                   ORDER BY updated_at DESC, id DESC OFFSET %s LIMIT 1""",
                                (shop["id"], int(args.cases * 0.9))).fetchone()
        print(f"filled {counts['cases']} cases, {counts['orders']} orders, {counts['documents']} documents "
              f"in {time.monotonic() - started:.1f} s")
        client = create_app(settings).test_client()
        cases = [
            ("first page", {}),
            ("status filter (failed, 1%)", {"status": "failed"}),
            ("status filter (open, 10%)", {"status": "open"}),
            (f"keyset page {int(args.cases * 0.9):,} rows deep", {"after": home.encode_cursor(deep["updated_at"], deep["id"])}),
            ("search, narrow ('Guðrún 4711')", {"q": "Guðrún 4711"}),
            ("search, order name ('#51234')", {"q": "#51234"}),
            ("search, broad ('Helga', 1/6 of rows)", {"q": "Helga"}),
        ]
        if args.explain:
            explain(shop["id"], cases)
        queries = {label: {"rows": 0, "median_ms": [], "p95_ms": [], "max_ms": []} for label, _ in cases}
        for run in range(args.runs):
            print(f"\nrun {run + 1}: home page server time, {args.repeat} requests each (ms)")
            print(f"{'request':44} {'rows':>5} {'median':>8} {'p95':>8} {'max':>8}")
            for label, params in cases:
                times, rows = measure(client, params, args.repeat)
                times.sort()
                p95 = times[max(0, int(round(0.95 * len(times))) - 1)]
                print(f"{label:44} {rows:>5} {statistics.median(times):>8.1f} {p95:>8.1f} {times[-1]:>8.1f}")
                q = queries[label]
                q["rows"] = rows
                q["median_ms"].append(statistics.median(times))
                q["p95_ms"].append(p95)
                q["max_ms"].append(times[-1])
    print(f"\np95 over {args.runs} run(s) (ms)")
    breakdown = {}
    for label, q in queries.items():
        p95 = harness.print_spread(label, q["p95_ms"], digits=1)
        breakdown[label] = {"rows": q["rows"], "median_ms": harness.r(statistics.median(q["median_ms"]), 1),
                            "p95_ms": harness.r(p95["median"], 1), "p95_ms_min": harness.r(p95["min"], 1),
                            "p95_ms_max": harness.r(p95["max"], 1), "max_ms": harness.r(max(q["max_ms"]), 1)}
    worst = max(breakdown, key=lambda label: breakdown[label]["p95_ms"])
    harness.result({"cases": args.cases, "repeat": args.repeat, "runs": args.runs,
                    "p95_ms_max": breakdown[worst]["p95_ms"], "slowest": worst, "queries": breakdown})
    return 0


if __name__ == "__main__":
    sys.exit(main())
