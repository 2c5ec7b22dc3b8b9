"""What the bench scripts share: bringing the system up from empty tables, shops and returns in
the Shopify stand-in, the web process as the Procfile runs it, RQ worker processes, counting
calls at the stand-ins, CPU time of the processes that do the work, and the `RESULT {json}` line.

Servers: like `make run`, embedded PostgreSQL/Redis under .data/ unless DATABASE_URL / REDIS_URL
are set (`running_system`). Against shared servers, point them at a database and Redis number
of the bench's own, e.g.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/5

Each run makes a fresh database named SKILVIS_BENCH_DATABASE (default `skilvis_b`) beside the
one DATABASE_URL names, and empties that Redis database.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402  (pinned in requirements.txt)
import requests  # noqa: E402

from shopify_app import db, jobqueue  # noqa: E402
from shopify_app.sandbox import player  # noqa: E402
from shopify_app.sandbox.system import running_system  # noqa: E402

BENCH_DATABASE = os.environ.get("SKILVIS_BENCH_DATABASE", "skilvis_b")
LOG_DIR = ROOT / ".data" / "bench"
# --latency: what a call to each service costs in real life (per HTTP request).
SHOPIFY_LATENCY = 0.150
PAYDAY_LATENCY = 0.250

ORDER = {"customer": {"email": "anna@example.is"}, "currency": "ISK", "taxes_included": True,
         "lines": [{"sku": "KRUS", "title": "Krús", "price": "1990", "quantity": 2, "tax_rate": "24"}],
         "payment": {"gateway": "shopify_payments", "status": "success"}}
RETURN_LINES = [{"sku": "KRUS", "quantity": 2}]

# pgserver logs its shutdown at exit (after RESULT): keep the RESULT line last.
logging.getLogger("pgserver").setLevel(logging.WARNING)


# --- arguments and output ------------------------------------------------------------------

def parser(doc: str | None, *, latency: bool = True, runs: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0] if doc else None)
    if runs:
        p.add_argument("--runs", type=int, default=3, help="runs, each from empty tables (default 3)")
    if latency:
        p.add_argument("--latency", action="store_true",
                       help=f"Shopify answers after {SHOPIFY_LATENCY * 1000:.0f} ms, Payday after "
                            f"{PAYDAY_LATENCY * 1000:.0f} ms (per request)")
    return p


def spread(values) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"min": None, "median": None, "max": None}
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def print_spread(label: str, values, unit: str = "", digits: int = 2) -> dict:
    s = spread(values)
    if s["median"] is None:
        print(f"{label:38} n/a")
    else:
        print(f"{label:38} min {s['min']:.{digits}f}  median {s['median']:.{digits}f}  max {s['max']:.{digits}f}"
              + (f" {unit}" if unit else ""))
    return s


def result(payload: dict) -> None:
    """The last line of every bench script's output."""
    sys.stderr.flush()
    print("RESULT " + json.dumps(payload, ensure_ascii=False, default=str), flush=True)


def r(value, digits: int = 3):
    return None if value is None else round(value, digits)


# --- the system ---------------------------------------------------------------------------

_lock_file = None


def machine_lock() -> None:
    """One bench at a time on this machine (held until the process exits): two at once would
    drop each other's database (same name, same server) and share the same cores."""
    global _lock_file
    if _lock_file is not None:
        return
    import fcntl
    _lock_file = open(f"/tmp/skilvis-bench-{os.getuid()}.lock", "w")
    try:
        fcntl.flock(_lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"another bench run holds {_lock_file.name}; waiting for it to finish", file=sys.stderr, flush=True)
        fcntl.flock(_lock_file, fcntl.LOCK_EX)


@contextmanager
def fresh_system(*, latency: bool = False, database: str = BENCH_DATABASE):
    """running_system (stand-ins, fresh database, migrations, the app in a thread) with an
    empty Redis database; with `latency`, the stand-ins answer slowly. Yields (system, settings)."""
    machine_lock()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    environ = dict(os.environ)   # running_system points DATABASE_URL at the fresh database: undo for the next run
    try:
        with running_system(database_name=database) as (system, settings):
            jobqueue.redis_connection().flushdb()   # no queue, mark or registry left by an earlier run
            if latency:
                slow_down(system)
            yield system, settings
    finally:
        os.environ.clear()
        os.environ.update(environ)


def slow_down(system, shopify: float = SHOPIFY_LATENCY, payday: float = PAYDAY_LATENCY) -> None:
    """The Payday stand-in has `latency` (every request waits that long). The Shopify stand-in
    has none, so its WSGI app is wrapped from here: every Admin API request (GraphQL and the
    token endpoint, /shops/...) waits `shopify` seconds before it is handled."""
    system.payday.latency = payday
    app = system.shopify.app
    inner = app.wsgi_app

    def delayed(environ, start_response):
        if environ.get("PATH_INFO", "").startswith("/shops/"):
            time.sleep(shopify)
        return inner(environ, start_response)

    app.wsgi_app = delayed


@contextmanager
def unthrottled(system):
    """Setup work (opening and refunding the returns before a measurement) is not measured: the
    Shopify stand-in's cost buckets are made bottomless for it, then every shop's bucket starts
    full again with the stand-in's usual size and restore rate."""
    graphql = system.shopify.graphql
    saved = graphql.maximum_available, graphql.restore_rate
    graphql.maximum_available, graphql.restore_rate = 10**9, 10**9
    graphql.buckets.clear()
    try:
        yield
    finally:
        graphql.maximum_available, graphql.restore_rate = saved
        graphql.buckets.clear()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Web:
    """The web process as the Procfile runs it: gunicorn with gunicorn.conf.py (2 workers x 4
    threads), on 127.0.0.1 and a free port, with the environment running_system set."""

    def __init__(self, name: str = "web"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(LOG_DIR / f"{name}.log", "w")
        env = {**os.environ, "PORT": str(self.port)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{self.port}",
             "--control-socket", str(LOG_DIR / f"{name}.ctl"), "shopify_app.wsgi:app"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}; see {self.log.name}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).status_code in (200, 503):
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"gunicorn did not answer in 60 s; see {self.log.name}")
            time.sleep(0.2)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# --- shops and returns in the Shopify stand-in ----------------------------------------------

def shop_domain(n: int) -> str:
    return f"bench-shop-{n:03d}.myshopify.com"


def payday_client(domain: str) -> tuple[str, str]:
    name = domain.split(".")[0]
    return name, f"{name}-secret"


def install_shop(system, domain: str, app_url: str | None = None) -> int:
    """The player's install_shop for any shop, connected to a Payday company of its own, its
    webhooks sent to `app_url` (by default the system's)."""
    target = replace(system, app_url=app_url) if app_url else system
    return player.install_shop(target, currency="ISK", taxes_included=True, gateways=["shopify_payments"],
                               domain=domain, payday_client=payday_client(domain))


def open_and_refunded(system, domain: str, n: int, first_number: int = 2000) -> list:
    """`n` orders of the shop, each with return R1 open and refunded (webhooks queued, not sent)."""
    store = system.shopify.store
    orders = []
    for i in range(n):
        order = store.create_order(domain, {**ORDER, "name": f"#{first_number + i}"})
        store.apply(order, {"do": "return_open", "return": "R1", "lines": RETURN_LINES})
        store.apply(order, {"do": "refund", "return": "R1", "lines": RETURN_LINES})
        orders.append(order)
    return orders


def close_returns(system, orders) -> dict:
    """Close each order's R1 (webhooks queued, not sent); returns {return gid: closed_at}."""
    store = system.shopify.store
    closed = {}
    for order in orders:
        ret = store.apply(order, {"do": "return_close", "return": "R1"})
        closed[f"gid://shopify/Return/{ret.id}"] = ret.closed_at
    return closed


def invoices_of(system, domain: str) -> int:
    """How many invoices the shop's Payday company holds (cheap: no copies, no lock)."""
    return len(system.payday.company(payday_client(domain)[0]).invoices)


def sent_documents() -> int:
    with db.transaction() as conn:
        return conn.execute("SELECT count(*) AS n FROM documents WHERE status = 'sent'").fetchone()["n"]


# --- worker processes -------------------------------------------------------------------------

def spawn_workers(n: int, tag: str = "worker") -> list[subprocess.Popen]:
    """`n` real worker processes as the Procfile runs them, in burst mode (they exit once the
    queues are empty; RQ forks a work horse per job)."""
    return [subprocess.Popen([sys.executable, "worker.py", "--burst"], cwd=ROOT, env=dict(os.environ),
                             stdout=subprocess.DEVNULL, stderr=open(LOG_DIR / f"{tag}-{i}.log", "w"))
            for i in range(n)]


def wait_workers(workers: list[subprocess.Popen]) -> list[int]:
    return [code for code, _rss in wait_workers_rss(workers)]


def wait_workers_rss(workers: list[subprocess.Popen]) -> list[tuple[int, float]]:
    """Each worker's exit code and peak resident memory in MB: its VmHWM, read every 0.2 s
    until it exits. (The kernel's maxrss at reaping would count the bench's own pages, which
    the child held between fork and exec.)"""
    peak = {w.pid: 0 for w in workers}
    while any(w.poll() is None for w in workers):
        for w in workers:
            try:
                status = Path(f"/proc/{w.pid}/status").read_text()
            except OSError:
                continue
            hwm = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
            if hwm:
                peak[w.pid] = max(peak[w.pid], int(hwm.group(1)) / 1024)
        time.sleep(0.2)
    return [(w.returncode, peak[w.pid]) for w in workers]


def run_workers(n: int, tag: str = "worker") -> float:
    """Spawn `n` burst workers and wait for them; returns the wall time."""
    started = time.monotonic()
    codes = wait_workers(spawn_workers(n, tag))
    if any(codes):
        print(f"warning: a worker exited with {codes} (see {LOG_DIR}/{tag}-*.log)", file=sys.stderr)
    return time.monotonic() - started


def worker_startup_cpu(n: int) -> float:
    """CPU seconds that `n` burst workers take to start and stop with nothing to do (queues
    empty): a fixed cost per process, not per document, which the scripts subtract."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    run_workers(n, "startup")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


# --- counting at the stand-ins ------------------------------------------------------------------

@dataclass
class Calls:
    graphql: int               # GraphQL requests the Shopify stand-in received (graphql_calls)
    graphql_answered: int      # of them, answered with a body (graphql_requests)
    throttled: int             # answers whose errors carry extensions.code THROTTLED
    requested_cost_max: int    # the highest requestedQueryCost the stand-in computed
    actual_cost: int           # the sum of actualQueryCost (what the shops' buckets paid)
    token: int                 # requests to Shopify's token endpoint
    payday: Counter            # Payday stand-in requests by "METHOD /first-segment"

    @property
    def payday_total(self) -> int:
        return sum(self.payday.values())


class Mark:
    """Where the stand-ins' request logs stood; `since()` counts what came after."""

    def __init__(self, system):
        self.system = system
        s = system.shopify
        self.graphql = sum(s.graphql_calls.values())
        self.graphql_requests = len(s.graphql_requests)
        self.token = len(s.token_requests)
        self.payday = len(system.payday.requests)

    def since(self) -> Calls:
        s = self.system.shopify
        answered = s.graphql_requests[self.graphql_requests:]
        throttled = sum(1 for a in answered
                        if any(((e or {}).get("extensions") or {}).get("code") == "THROTTLED" for e in a["errors"] or []))
        cost = max((int(a["cost"].get("requestedQueryCost") or 0) for a in answered if a.get("cost")), default=0)
        actual = sum(int(a["cost"].get("actualQueryCost") or 0) for a in answered if a.get("cost"))
        payday = Counter(f"{q['method']} /{q['path'].split('/')[1]}" for q in self.system.payday.requests[self.payday:])
        return Calls(graphql=sum(s.graphql_calls.values()) - self.graphql, graphql_answered=len(answered),
                     throttled=throttled, requested_cost_max=cost, actual_cost=actual,
                     token=len(s.token_requests) - self.token, payday=payday)


# --- CPU time -------------------------------------------------------------------------------------

def _tree_seconds(pid: int | None) -> float | None:
    """User + system CPU of a process, its reaped children, and its live descendants."""
    if pid is None:
        return None
    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
    except psutil.Error:
        return None
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def postgres_pid() -> int | None:
    """The postmaster of the server DATABASE_URL names, when it runs on this machine: the parent
    of our own backend (every backend, and the checkpointer, WAL writer and autovacuum, are its
    children; a backend that exits adds its CPU to the postmaster's reaped-children time)."""
    try:
        with db.transaction() as conn:
            backend = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
        parent = psutil.Process(backend).ppid()
        return parent if "postgres" in psutil.Process(parent).name() else None
    except Exception:
        return None


def pg_counters() -> dict:
    """The bench database's counters in pg_stat_database (PostgreSQL 14+): sessions opened,
    transactions; read before and after to see how many connections and transactions work took.
    (A backend reports at its transactions' ends, at most about once a second while busy.)"""
    try:
        with db.transaction() as conn:
            conn.execute("SELECT pg_stat_force_next_flush()")   # our own pending counts
            row = conn.execute("""SELECT sessions, xact_commit + xact_rollback AS transactions
                                  FROM pg_stat_database WHERE datname = current_database()""").fetchone()
        return dict(row)
    except Exception:
        return {}


def pg_delta(before: dict, after: dict) -> dict:
    return {k: after[k] - before[k] for k in before if k in after}


def redis_pid() -> int | None:
    try:
        pid = int(jobqueue.redis_connection().info("server")["process_id"])
        return pid if "redis" in psutil.Process(pid).name() else None
    except Exception:
        return None


class Cpu:
    """CPU seconds used, per part, between `Cpu(...)` and `.delta()`:
    - workers: this process's reaped children (RUSAGE_CHILDREN: the burst worker processes,
      including the work horses RQ forked and reaped); so spawn and wait for workers inside.
    - postgres: the postmaster's process tree (all of it: other databases on a shared server count);
    - redis: the Redis server process;
    - web: the gunicorn master and its workers, when `web_pid` is given;
    - bench: this process (the Shopify and Payday stand-ins, the in-thread app, the load client);
    - others: the whole machine's busy CPU less all of the above: other people's processes
      competing for the same cores (`foreign_share()`: their share of the machine's capacity)."""

    def __init__(self, web_pid: int | None = None, pg_pid: int | None = None, rd_pid: int | None = None):
        self.web_pid, self.pg_pid, self.rd_pid = web_pid, pg_pid, rd_pid
        self.start = self._now()
        self.started = time.monotonic()
        self.used: dict | None = None

    @staticmethod
    def _machine() -> float:
        t = psutil.cpu_times()
        return t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)

    def _now(self) -> dict:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        me = resource.getrusage(resource.RUSAGE_SELF)
        return {"workers": children.ru_utime + children.ru_stime, "postgres": _tree_seconds(self.pg_pid),
                "redis": _tree_seconds(self.rd_pid), "web": _tree_seconds(self.web_pid),
                "bench": me.ru_utime + me.ru_stime, "machine": self._machine()}

    def delta(self) -> dict:
        end = self._now()
        self.wall = time.monotonic() - self.started
        used = {k: (None if end[k] is None or self.start[k] is None else end[k] - self.start[k]) for k in end}
        machine = used.pop("machine")
        used["others"] = max(0.0, machine - sum(v or 0 for v in used.values()))
        self.used = used
        return used

    def foreign_share(self) -> float:
        """Of the machine's CPU capacity over the window, the share other processes used."""
        return self.used["others"] / (self.wall * (psutil.cpu_count() or 1))
