"""What every accounting system's stand-in shares (Payday, e-conomic, Dinero, Billy): a real
local HTTP server on a free port, started and stopped by the tests and the sandbox, and the
fault injection the chaos and exactly-once tests play (fail the next n requests, hold them past
the client's timeout, lose the answer after committing). Each stand-in is a subclass that
models its system's API (`_build_app`, which gives `install_fault_hooks` its own error shapes)
and its state (`_clear`, which sets what the shared hooks read: `requests`, `_faults`, `modes`,
`_rng`, `faults`, `lost_answer_paths`)."""
from __future__ import annotations

import fnmatch
import json
import re
import socket
import threading
import time
from datetime import date

from flask import Flask, g, request
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


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def is_date(value) -> bool:
    """A real calendar day written YYYY-MM-DD, nothing else."""
    if not isinstance(value, str) or not _DATE.match(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def checked_mode(system: str, mode_values: dict, own: dict, name: str, value):
    """The value a stand-in keeps for mode `name`, or ValueError in `system`'s name: a mode of
    `mode_values` takes one of its values, `lost_answers` a rate, `seed` anything, and a mode of
    `own` (name -> checker) what its checker returns."""
    if name in mode_values:
        if value not in mode_values[name]:
            raise ValueError(f"{system} stand-in mode {name}={value!r}: one of {', '.join(mode_values[name])}")
        return value
    if name == "lost_answers":
        rate = float(value)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{system} stand-in mode lost_answers: a rate between 0 and 1")
        return rate
    if name in own:
        return own[name](value)
    if name == "seed":
        return value
    raise ValueError(f"the {system} stand-in has no mode {name!r}")


class StandinServer:
    name = "standin"
    # Seconds every request is held: Payday's and Dinero's reset it with their state; the others
    # are never slowed, but the shared hooks read it all the same.
    latency = 0.0

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

    # --- the app's fault hooks --------------------------------------------------------------

    def install_fault_hooks(self, app: Flask, refusal: type[Exception], *, refused, not_found, not_allowed, held,
                            failed, committed, gate=None, after=None) -> None:
        """Give the system's app what every stand-in does around its views: record each request,
        hold or fail it as the faults say, then after a successful answer the after-commit fault
        and the lost answers. The answers are the system's own error shapes: `refused(exc)` for
        its `refusal`, `not_found()`, `not_allowed()`, `held()` when a reset cuts a hold short,
        `failed(fault)`, `committed(status)`. `gate()` runs the system's own checks once no
        fault answered; `after(resp)` its own steps before the after-commit fault (a response
        ends the request there, None goes on)."""
        app.register_error_handler(refusal, refused)
        app.register_error_handler(404, lambda exc: not_found())
        app.register_error_handler(405, lambda exc: not_allowed())

        @app.before_request
        def take_faults():
            body = self._request_body()
            with self._lock:
                self.requests.append(self._recorded(body))
                generation, latency = self._generation, self.latency
            g.body = body
            if latency and not self._hold(latency, generation):
                return held()
            fault = self._take_fault("hold", request.method, request.path)
            if fault and not self._hold(fault["seconds"], generation):
                return held()
            fault = self._take_fault("fail", request.method, request.path)
            if fault:
                return failed(fault)
            return gate() if gate else None

        @app.after_request
        def take_after_faults(resp):
            own = after(resp) if after else None
            if own is not None:
                return own
            if resp.status_code >= 300:
                return resp
            fault = self._take_fault("after_commit", request.method, request.path)
            if fault:
                if fault["status"] is None:
                    request.environ["standin.drop"] = True
                    return resp
                return committed(fault["status"])
            if self._answer_lost(request.method, request.path):
                request.environ["standin.drop"] = True  # committed; the caller never hears of it
            return resp

    def _request_body(self):
        """The request's JSON body; None without one, or when it is not JSON (the views refuse it)."""
        raw = request.get_data(cache=True)
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    def _recorded(self, body) -> dict:
        return {"method": request.method, "path": request.path, "query": request.args.to_dict(),
                "headers": dict(request.headers), "json": body, "at": time.time()}

    def _answer_lost(self, method: str, path: str) -> bool:
        """Draw whether this committed request's answer is lost (mode lost_answers)."""
        with self._lock:
            rate = self.modes["lost_answers"]
            if not rate or not matches(tuple(self.lost_answer_paths), method, path):
                return False
            if self._rng.random() >= rate:
                return False
            self.faults["lost_answers"] += 1
            return True

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
