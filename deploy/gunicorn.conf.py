"""Gunicorn settings for the web service: `gunicorn -c deploy/gunicorn.conf.py 'search_app:create_app()'`.

Sized for the project's 2-core machine; WEB_CONCURRENCY and GUNICORN_THREADS tune it without a rebuild.
"""

import os

bind = ["0.0.0.0:8000"]  # inside the container; docker-compose.yml decides what the host exposes

# Processes: one per core. Threads: a request mostly waits (for PostgreSQL, or for Elasticsearch up to its 2 s
# search timeout), so a few threads per process keep requests flowing while others wait, and the circuit
# breaker keeps an outage from holding them (T28).
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))

# No preloading: each worker process opens its own database pool and search client after the fork. A pool or
# a tantivy writer thread created in the master would be shared by forked children and corrupted.
preload_app = False

timeout = 30  # a worker silent this long is killed and replaced
graceful_timeout = 25  # below docker-compose.yml's stop_grace_period (35 s), so shutdowns finish cleanly
keepalive = 5  # behind a reverse proxy that reuses connections

# Recycling bounds slow memory growth in long-lived workers (T29: RSS stays flat); the jitter keeps the
# workers from restarting at the same moment.
max_requests = 1000
max_requests_jitter = 100

# The heartbeat file lives in memory: on an overlay filesystem a slow disk could make a healthy worker look
# stuck and get it killed.
worker_tmp_dir = "/dev/shm"

# Gunicorn 25+ opens a management socket under $HOME by default; nothing here uses it, so it stays closed.
control_socket_disable = True

accesslog = "-"
errorlog = "-"
loglevel = "info"
# The path without its query string and no referrer: search terms are whatever citizens type, names and
# addresses included, and must not end up in logs (T08). %(M)s is the request time in milliseconds.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(a)s"'

proc_name = "social-library-web"


def worker_exit(server, worker):
    """As a worker stops, it logs how long its requests waited for a database connection (T29: the pool is
    never exhausted, wait p99 <= 50 ms) and how many searches its result cache answered. Runs in the worker,
    where the app, its pool and its cache live."""
    import json

    extensions = getattr(getattr(worker, "wsgi", None), "extensions", {})
    library = extensions.get("library")
    report = library.store.pool_waits() if library is not None else None
    if report is not None:
        worker.log.info("database pool waits %s", json.dumps({"pid": worker.pid, **report.as_dict()}))
    cache = extensions.get("result_cache")
    if cache is not None:
        figures = {"pid": worker.pid, "hits": cache.hits, "shared_hits": cache.shared_hits,
                   "misses": cache.misses}
        worker.log.info("search result cache %s", json.dumps(figures))
