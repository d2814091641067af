"""gunicorn settings for `make serve-prod`, each overridable from the environment.

GUNICORN_BIND      address to listen on (default 127.0.0.1:8000; 0.0.0.0:8000 behind a load balancer)
GUNICORN_WORKERS   worker processes (default: 2 x CPU cores + 1)
GUNICORN_TIMEOUT   seconds before a stuck worker is restarted (default 30)
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", 2 * multiprocessing.cpu_count() + 1))
threads = int(os.environ.get("GUNICORN_THREADS", 1))
# Every request is short (a few queries): sync workers, or with GUNICORN_THREADS > 1 threaded
# workers, which also keep connections from the load balancer alive between requests.
worker_class = "gthread" if threads > 1 else "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))
graceful_timeout = 20
keepalive = 5
# Recycle workers now and then, so that a slow leak can never grow without bound.
max_requests = 20000
max_requests_jitter = 2000
# Access log: method, path, status, size, time in microseconds. Never the body; paths hold key
# names at most, never values.
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(D)sus'
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
