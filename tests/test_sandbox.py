"""`make run` without Shopify credentials is the sandbox: on a fresh machine (no database, Redis
or Shopify app given) it comes up with the stand-ins and a demo shop whose rows show every
status, serves the sandbox panel, and Ctrl-C stops all of it."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import psycopg
import pytest
import requests
from psycopg.rows import dict_row

from shopify_app.sandbox import demo
from tests.sandbox_process import SandboxProcess
from tests.test_processes import _stop_embedded_postgres, free_port

ROOT = Path(__file__).resolve().parent.parent
EVERY_STATUS = {"open", "pending_settlement", "processing", "created", "none_needed", "failed"}


def test_make_run_without_credentials_is_the_sandbox_and_ctrl_c_stops_everything(tmp_path):
    data = tmp_path / "data"
    sandbox = SandboxProcess(free_port(), SKILVIS_DATA_DIR=str(data), DATABASE_URL=None, REDIS_URL=None,
                             ENCRYPTION_KEY=None)
    try:
        seconds = sandbox.wait_ready()
        print(f"sandbox ready {seconds:.1f}s after the launcher started")
        shopify_url, payday_url = sandbox.standin_urls()

        panel = requests.get(f"{sandbox.url}/sandbox", timeout=10)
        assert panel.status_code == 200 and 'id="app-frame"' in panel.text and demo.SHOP in panel.text
        token = requests.get(f"{sandbox.url}/sandbox/id-token", timeout=10).json()["id_token"]
        assert requests.get(f"{sandbox.url}/api/me", headers={"Authorization": f"Bearer {token}"},
                            timeout=10).json()["shop"] == demo.SHOP

        with psycopg.connect(_embedded_database_url(data), row_factory=dict_row) as conn:
            statuses = {r["status"] for r in conn.execute(
                "SELECT c.status FROM cases c JOIN shops s ON s.id = c.shop_id WHERE s.domain = %s", (demo.SHOP,))}
        assert statuses == EVERY_STATUS

        children = psutil.Process(sandbox.proc.pid).children(recursive=True)
        assert len(children) >= 2   # gunicorn (and its workers) and the RQ worker
        assert sandbox.ctrl_c() == 0
        assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        for url in (f"{sandbox.url}/healthz", f"{shopify_url}/_control/shops", f"{payday_url}/general/vat"):
            with pytest.raises(requests.ConnectionError):
                requests.get(url, timeout=2)
        assert not _embedded_redis(data)
    finally:
        sandbox.kill()
        _stop_embedded_postgres(data / "pg")



def _embedded_database_url(data) -> str:
    """The launcher's embedded PostgreSQL, by its socket folder. (Not pgserver.get_server: its
    handle would be reused by the cleanup below, which then would not stop the server.)"""
    return f"postgresql://postgres:@/postgres?host={data / 'pg'}"


def _embedded_redis(data) -> list:
    def ours(proc):
        try:
            return "redis-server" in proc.name() and str(data) in " ".join(proc.cmdline())
        except psutil.Error:
            return False

    return [p for p in psutil.process_iter() if ours(p)]


def test_make_run_on_a_port_in_use_says_so_and_starts_nothing(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "shopify_app.launcher"], cwd=ROOT, capture_output=True, text=True,
                              timeout=60, env={**os.environ, "PORT": str(port), "SKILVIS_DATA_DIR": str(tmp_path)})
    assert done.returncode == 2 and f"port {port} is in use" in done.stderr
    assert not list(tmp_path.iterdir())   # no embedded PostgreSQL or Redis was started
