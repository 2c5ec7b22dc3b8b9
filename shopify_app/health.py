"""GET /healthz: is Postgres answering, is Redis answering, is a worker alive.

The public answer is only ok or not (200 {"ok": true} / 503 {"ok": false}); the details (each
server, the queue, the worker's heartbeat) need `Authorization: Bearer <HEALTHZ_TOKEN>`."""
from __future__ import annotations

import hmac
from datetime import datetime, timezone

from flask import Blueprint, current_app, jsonify, request
from rq import Worker

from . import db, jobqueue

bp = Blueprint("health", __name__)

WORKER_STALE_AFTER = 120  # seconds without a heartbeat


def _postgres() -> dict:
    try:
        with db.transaction() as conn:
            conn.execute("SELECT 1")
        return {"status": "ok"}
    except Exception as exc:  # the point is to report, not to fail
        return {"status": "down", "error": type(exc).__name__}


def _redis() -> tuple[dict, dict]:
    try:
        conn = jobqueue.redis_connection()
        conn.ping()
    except Exception as exc:
        return {"status": "down", "error": type(exc).__name__}, {"status": "unknown"}
    workers = Worker.all(queue=jobqueue.queue(conn))
    now = datetime.now(timezone.utc)
    beats = [w.last_heartbeat.replace(tzinfo=timezone.utc) for w in workers if w.last_heartbeat]
    latest = max(beats, default=None)
    if latest is None:
        worker = {"status": "none", "workers": 0}
    else:
        age = (now - latest).total_seconds()
        worker = {"status": "ok" if age < WORKER_STALE_AFTER else "stale", "workers": len(workers),
                  "last_heartbeat": latest.isoformat(), "seconds_ago": round(age, 1)}
    queued = jobqueue.queue(conn).count
    return {"status": "ok", "queued_jobs": queued}, worker


def _access() -> str:
    """'details' with the health token (compared in constant time), 'public' without an
    Authorization header, 'refused' with any other."""
    header = request.headers.get("Authorization")
    if header is None:
        return "public"
    expected = current_app.config["SETTINGS"].healthz_token
    given = header[len("Bearer "):] if header.startswith("Bearer ") else ""
    if expected and hmac.compare_digest(given.encode(), expected.encode()):
        return "details"
    return "refused"


@bp.get("/healthz")
def healthz():
    access = _access()
    if access == "refused":
        return jsonify(error="invalid health token"), 401
    postgres = _postgres()
    redis, worker = _redis()
    ok = postgres["status"] == "ok" and redis["status"] == "ok"
    if access == "public":
        return jsonify(ok=ok), (200 if ok else 503)
    return (jsonify(ok=ok, status="ok" if ok else "down", postgres=postgres, redis=redis, worker=worker),
            (200 if ok else 503))
