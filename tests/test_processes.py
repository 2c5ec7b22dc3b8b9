"""The processes of the Procfile, run for real: the worker (with its cron scheduler) and
`make run`'s launcher (web + worker), each stopped by a signal."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from rq import Worker
from rq.cron import CronScheduler

from shopify_app import db, jobqueue
from tests.conftest import API_SECRET, HEALTHZ_TOKEN
from tests.helpers import body_of, webhook_headers

ROOT = Path(__file__).resolve().parent.parent


def wait_for(condition, timeout=30.0, interval=0.1):
    """Poll a condition (never a blind sleep): returns its first truthy value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_worker_runs_jobs_and_cron_and_stops_gracefully_on_sigterm(client, redis):
    proc = subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: Worker.all(connection=redis))
        wait_for(lambda: CronScheduler.all(redis))
        body = body_of({"id": 1, "admin_graphql_api_id": "gid://shopify/Return/1", "order_id": 2, "status": "closed"})
        assert client.post("/webhooks", data=body, headers=webhook_headers(body, API_SECRET)).status_code == 200

        def processed():
            with db.transaction() as conn:
                return conn.execute("SELECT status FROM webhook_events").fetchone()["status"] == "processed"

        wait_for(processed)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert wait_for(lambda: not Worker.all(connection=redis), timeout=10)


def test_a_worker_whose_loop_breaks_on_a_redis_error_works_again(redis, monkeypatch):
    # `make chaos`'s Redis restart: a reset in the middle of a job ends RQ's loop; the process
    # must go on working (with its dispatcher), not wait for the platform to restart it.
    import worker
    from rq.worker import SimpleWorker

    workers, execute = [], SimpleWorker.execute_job

    def reset_once(self, job, queue):
        workers.append(self.name)
        if len(workers) == 1:
            raise ConnectionResetError(104, "Connection reset by peer")
        execute(self, job, queue)
        os.kill(os.getpid(), signal.SIGTERM)   # done: the stop the platform sends
    monkeypatch.setattr(SimpleWorker, "execute_job", reset_once)
    monkeypatch.setattr(worker, "RESTART_PAUSE", 0.0)
    live = jobqueue.queue()
    _lost, done = (live.enqueue("shopify_app.retention.purge") for _ in range(2))
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        worker._work(redis)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert len(workers) == 2 and workers[0] != workers[1]   # a new worker took over
    assert done.get_status(refresh=True) == "finished"


HEALTH = {"Authorization": f"Bearer {HEALTHZ_TOKEN}"}   # the details need the health token


def test_healthz_reports_postgres_redis_and_worker(client, redis):
    body = client.get("/healthz", headers=HEALTH).json
    assert body["postgres"]["status"] == "ok" and body["redis"]["status"] == "ok"
    assert body["worker"]["status"] == "none"
    worker = Worker([jobqueue.queue(redis)], connection=redis)
    worker.register_birth()
    worker.heartbeat()
    try:
        assert client.get("/healthz", headers=HEALTH).json["worker"]["status"] == "ok"
    finally:
        worker.register_death()


def test_healthz_says_down_when_redis_is_unreachable(client, monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    resp = client.get("/healthz", headers=HEALTH)
    assert resp.status_code == 503 and resp.json["redis"]["status"] == "down"


@pytest.mark.parametrize("embedded", [False, True], ids=["given-servers", "embedded-servers"])
def test_launcher_runs_web_and_worker_and_ctrl_c_stops_both(servers, tmp_path, embedded):
    port = free_port()
    env = {**os.environ, "PORT": str(port), "SKILVIS_DATA_DIR": str(tmp_path / "data")}
    if embedded:  # a fresh machine: no database or Redis given
        for name in ("DATABASE_URL", "REDIS_URL", "ENCRYPTION_KEY"):
            env.pop(name, None)
    proc = subprocess.Popen([sys.executable, "-m", "shopify_app.launcher"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        def healthy():
            try:
                body = requests.get(f"http://127.0.0.1:{port}/healthz", headers=HEALTH, timeout=2).json()
            except (requests.RequestException, ValueError):
                return None
            return body if body["worker"]["status"] == "ok" else None

        body = wait_for(healthy, timeout=90, interval=0.3)
        assert body["postgres"]["status"] == "ok"
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does to the terminal's process group
        assert proc.wait(30) == 0
        with pytest.raises(requests.RequestException):
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        if embedded:
            _stop_embedded_postgres(tmp_path / "data" / "pg")


def _stop_embedded_postgres(pgdata: Path) -> None:
    import pgserver

    if pgdata.exists():
        pgserver.get_server(pgdata, cleanup_mode="stop").cleanup()
