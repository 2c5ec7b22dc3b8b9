"""`make run`'s launcher without Shopify credentials (the sandbox), as a subprocess of a test:
started in its own process group so that a Ctrl-C reaches it, the web and the worker alike."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# What the tests' own environment may hold that would make the launcher something else than
# the sandbox, or point it at the tests' stand-ins.
NOT_INHERITED = ("SHOPIFY_API_KEY", "SHOPIFY_API_SECRET", "SHOPIFY_API_SECRET_OLD", "SHOPIFY_SHOP_URL_TEMPLATE",
                 "PAYDAY_BASE_URL", "SHOPIFY_APP_URL", "SKILVIS_SANDBOX", "SKILVIS_ENV", "PORT")
READY = re.compile(r"sandbox is ready in [\d.]+s: open (http://\S+/sandbox)")
STANDINS = re.compile(r"Shopify stand-in (http://\S+), Payday stand-in (http://\S+)")


class SandboxProcess:
    def __init__(self, port: int, **env):
        environ = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
        environ.update(PORT=str(port), PYTHONUNBUFFERED="1")
        for name, value in env.items():
            if value is None:
                environ.pop(name, None)
            else:
                environ[name] = value
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.lines: list[str] = []
        self.started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "shopify_app.launcher"], cwd=ROOT, env=environ,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        # gunicorn's access log is long: read it all the time, or the pipe fills and the web stalls.
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(line for line in self.lines if '"GET ' not in line and "rq.worker" not in line)[-8000:]

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Seconds from the start until the launcher said the sandbox's URL."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if READY.search(line):
                    return time.monotonic() - self.started
                if "could not be set up" in line:
                    raise AssertionError(f"the sandbox failed:\n{self.output()}")
            if self.proc.poll() is not None:
                raise AssertionError(f"the launcher exited with {self.proc.returncode}:\n{self.output()}")
            time.sleep(0.1)
        raise AssertionError(f"the sandbox was not ready within {timeout}s:\n{self.output()}")

    def standin_urls(self) -> tuple[str, str]:
        for line in self.lines:
            found = STANDINS.search(line)
            if found:
                return found.group(1), found.group(2)
        raise AssertionError(f"the launcher did not name its stand-ins:\n{self.output()}")

    def ctrl_c(self, timeout: float = 30.0) -> int:
        """What Ctrl-C in the terminal does: SIGINT to the whole process group."""
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
