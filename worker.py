"""The worker process (Procfile `worker:`): a long-lived RQ worker that runs each job in this
process (SimpleWorker: no fork per job, so the connection pools, HTTP sessions and Payday
clients live as long as the worker), the dispatcher thread that hands it work from Postgres
(dispatch.py), and RQ's CronScheduler for the periodic jobs, in a child process of its own.

SIGTERM (Heroku's stop signal) lets the running job finish within the grace period, stops the
dispatcher and the scheduler, and exits 0."""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import time

import redis.exceptions
from rq.worker import SimpleWorker

from shopify_app import config, db, dispatch, jobqueue, localservers, logs, periodic

log = logging.getLogger("skilvis.worker")


def _run_scheduler(redis_url: str) -> None:
    periodic.scheduler(jobqueue.redis_connection(redis_url)).start()


RESTART_PAUSE = 2.0   # seconds before a worker whose loop broke on an error works again


def _work(connection) -> None:
    """RQ's loop until a stop is asked for (SIGTERM, Ctrl-C). RQ leaves its loop on any error
    it did not expect, such as Redis reset mid-job (seen in `make chaos`'s Redis restart): the
    process would then end, and its dispatcher with it, until the platform restarted it. Here
    a new worker takes over instead; the job that was running is Postgres's to give out again."""
    while True:
        worker = SimpleWorker(jobqueue.queues(connection), connection=connection)
        try:
            worker.work(with_scheduler=False, logging_level="INFO")
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:   # Redis still away
            log.warning("Redis is not answering (%s)", exc)
        # RQ notes a stop request here (rq/worker/base.py request_stop); nothing public says so.
        if worker._stop_requested or worker._shutdown_requested_date:
            return
        log.warning("the worker's loop ended on an error; working again in %.0f s", RESTART_PAUSE)
        time.sleep(RESTART_PAUSE)


def main(burst: bool = False) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logs.install()                  # no log line carries a token or a secret
    db.use_timeouts_of("worker")    # jobs' statements may run longer than a web request's
    settings = config.load()
    handles = []
    if not settings.production and not (settings.database_url and settings.redis_url):
        handles = localservers.fill_environment()
    redis_url = os.environ["REDIS_URL"]
    connection = jobqueue.redis_connection(redis_url)

    cron = None
    if not burst:
        cron = multiprocessing.get_context("fork").Process(
            target=_run_scheduler, args=(redis_url,), name="skilvis-cron", daemon=True)
        cron.start()
    try:
        if burst:
            dispatch.run_until_idle(connection, budget_wait=60.0)   # a burst ends with no work left
        else:
            dispatcher, stop = dispatch.start()
            try:
                _work(connection)
            finally:
                stop.set()
                dispatcher.join(5)
    finally:
        if cron is not None and cron.is_alive():
            os.kill(cron.pid, signal.SIGTERM)
            cron.join(10)
        localservers.stop(handles)
    return 0


if __name__ == "__main__":
    sys.exit(main(burst="--burst" in sys.argv))
