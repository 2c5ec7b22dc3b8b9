"""What every accounting system's stand-in shares (Payday, e-conomic, Dinero, Billy): a real
local HTTP server on a free port, started and stopped by the tests and the sandbox, and the
fault injection the chaos and exactly-once tests play (fail the next n requests, hold them past
the client's timeout, lose the answer after committing). Each stand-in is a subclass that
models its system's API (`_build_app`, `_wsgi`) and its state (`_clear`)."""
from __future__ import annotations

import fnmatch
import socket
import threading
import time

from werkzeug.serving import WSGIRequestHandler, make_server


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


def matches(patterns, method: str, path: str) -> bool:
    """Whether a request matches one of `patterns`: a path prefix or glob, optionally after a
    method ("POST /invoices", "GET /v1/*/contacts"); no patterns match every request."""
    if not patterns:
        return True
    for item in patterns:
        want_method, _, glob = item.partition(" ") if " " in item else ("", "", item)
        if want_method and want_method.upper() != method:
            continue
        if fnmatch.fnmatchcase(path, glob) or ("*" not in glob and path.startswith(glob)):
            return True
    return False


class StandinServer:
    name = "standin"

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host, self.port = host, port
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._generation = 0
        self.server = self.thread = self.url = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self):
        self.server = make_server(self.host, self.port, self._wsgi, threaded=True, request_handler=QuietHandler)
        self.url = f"http://{self.host}:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name=f"{self.name}-standin", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        with self._wake:
            self._generation += 1
            self._wake.notify_all()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(5)
            self.server = None

    def reset(self) -> None:
        """Forget everything the system holds, every request, fault and mode. Requests still
        being held (a timeout fault, latency) are abandoned rather than carried into the next test."""
        with self._wake:
            self._generation += 1
            self._clear()
            self._wake.notify_all()

    def _clear(self) -> None:
        raise NotImplementedError

    def requests_to(self, path: str, method: str | None = None) -> list[dict]:
        with self._lock:
            return [r for r in self.requests if r["path"] == path and (method is None or r["method"] == method)]

    def _wsgi(self, environ, start_response):
        """The system's app (`self.app`), and a lost answer: a view that committed its work and
        set `standin.drop` has its answer thrown away and the connection cut."""
        result = self.app(environ, start_response)
        if environ.get("standin.drop"):
            try:
                b"".join(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
            sock = environ.get("werkzeug.socket")
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            raise ConnectionResetError(f"the {self.name} stand-in dropped the connection after committing")
        return result

    # --- fault injection -------------------------------------------------------------------

    def _add_fault(self, kind: str, n: int, paths, **options) -> None:
        if n <= 0:
            return
        if isinstance(paths, str):
            paths = (paths,)
        with self._lock:
            self._faults.append({"kind": kind, "remaining": n, "paths": tuple(paths or ()), **options})

    def _take_fault(self, kind: str, method: str, path: str) -> dict | None:
        with self._lock:
            for fault in self._faults:
                if fault["kind"] == kind and matches(fault["paths"], method, path):
                    fault["remaining"] -= 1
                    if fault["remaining"] <= 0:
                        self._faults.remove(fault)
                    return dict(fault)
        return None

    def _hold(self, seconds: float, generation: int) -> bool:
        """Wait `seconds`; False when a reset or stop came first."""
        deadline = time.monotonic() + seconds
        with self._wake:
            while self._generation == generation:
                left = deadline - time.monotonic()
                if left <= 0:
                    return True
                self._wake.wait(left)
        return False
