"""`make run`: the web app (gunicorn) and the worker together, stopped together by Ctrl-C.

With DATABASE_URL / REDIS_URL unset it first starts the embedded PostgreSQL and Redis under
.data/, so a fresh machine needs nothing else. Migrations run before either process starts.

Without SHOPIFY_API_KEY (outside production) it is the sandbox: the Shopify and Payday
stand-ins run in this process (sandbox/demo.py), the web and worker are pointed at them, a demo
shop is installed and its stories played, and the sandbox panel's URL is printed."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from . import db, localservers

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    port = os.environ.setdefault("PORT", "8000")
    if not port_free(port):
        # Else gunicorn fails on its own while the demo talks to whatever holds the port.
        print(f"port {port} is in use (another `make run`, or another program): stop it, or choose another "
              f"port, e.g. `PORT=8001 make run`", file=sys.stderr, flush=True)
        return 2
    handles = localservers.fill_environment()
    applied = db.migrate()
    print(f"migrations applied: {', '.join(applied) or 'none needed'}", flush=True)
    sandbox = None
    if not os.environ.get("SHOPIFY_API_KEY") and os.environ.get("SKILVIS_ENV", "development") != "production":
        from .sandbox import demo

        sandbox = demo.Sandbox.start()
    env = dict(os.environ)
    children = [
        subprocess.Popen(web_command(port, sandbox=sandbox is not None), cwd=ROOT, env=env),
        subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=env),
    ]
    if sandbox is None:
        print(f"Skilvís is running on http://localhost:{port}  (Ctrl-C stops web and worker)", flush=True)
    else:
        print(f"No SHOPIFY_API_KEY: starting the sandbox with a demo shop; Shopify stand-in {sandbox.shopify.url}, "
              f"Payday stand-in {sandbox.payday.url}", flush=True)
        # In a thread, so that Ctrl-C and a dying child are noticed while the demo is being made.
        threading.Thread(target=_demo, args=(sandbox, port, children[0]), daemon=True, name="demo").start()

    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    while not stopping:
        for child in children:
            if child.poll() is not None:
                print(f"{child.args[1:3]} exited with {child.returncode}; stopping", flush=True)
                stopping, code = True, 1
        time.sleep(0.2)
    _stop(children)
    if sandbox is not None:
        sandbox.stop()
    localservers.stop(handles)
    return code


def port_free(port: str) -> bool:
    with socket.socket() as probe:
        # As gunicorn binds: a port left in TIME_WAIT by the last run is free, a listening one is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", int(port)))
        except OSError:
            return False
    return True


def web_command(port: str, sandbox: bool) -> list[str]:
    """gunicorn with the production settings (gunicorn.conf.py: workers, redacted access log).
    The sandbox listens on the loopback only: its stand-ins, demo shop and panel have no
    authentication of their own, and its secrets are development defaults."""
    host = "127.0.0.1" if sandbox else "0.0.0.0"
    return [sys.executable, "-m", "gunicorn", "--config", str(ROOT / "gunicorn.conf.py"), "--bind", f"{host}:{port}",
            "shopify_app.wsgi:app"]


def _stop(children: list[subprocess.Popen], grace: float = 15.0) -> None:
    """SIGTERM to the web and the worker, then wait for them and for everything they started:
    gunicorn's workers, RQ's work horse and its scheduler. Those outlive their parent for a moment
    (a horse finishing its job), and Ctrl-C must leave nothing running."""
    family: set[psutil.Process] = set()

    def gather():
        for child in children:
            try:
                family.update(psutil.Process(child.pid).children(recursive=True))
            except psutil.NoSuchProcess:
                pass

    gather()
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(child.poll() is None for child in children) and time.monotonic() < deadline:
        gather()
        time.sleep(0.1)
    for child in children:
        if child.poll() is None:
            child.kill()
            child.wait()
    while (alive := [p for p in family if _running(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


def _running(process: psutil.Process) -> bool:
    # An orphan that has exited may stay a zombie when PID 1 does not reap: that is not running.
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _demo(sandbox, port: str, web: subprocess.Popen) -> None:
    from .sandbox import demo

    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        demo.wait_for_web(url, is_alive=lambda: web.poll() is None)
        sandbox.install(url)
        sandbox.play()
    except Exception as exc:  # the app still runs; say why the demo is incomplete
        print(f"the sandbox's demo shop could not be set up: {exc}", flush=True)
        return
    print(f"Skilvís sandbox is ready in {time.monotonic() - started:.1f}s: open http://localhost:{port}/sandbox"
          "  (Ctrl-C stops everything)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
