"""gunicorn settings for `make serve-prod`, each overridable from the environment.

GUNICORN_BIND      address to listen on (default 127.0.0.1:8000; 0.0.0.0:8000 behind a load balancer)
GUNICORN_WORKERS   worker processes (default: 2 x CPU cores + 1)
GUNICORN_THREADS   threads per worker that run the application (default 2)
GUNICORN_TIMEOUT   seconds before a stuck worker is restarted (default 30)
GUNICORN_WORKER_CONNECTIONS  open connections per worker, slow ones included; more are answered 503 (default 1000)
"""

import multiprocessing
import os

# The asyncio worker reads every request and writes every answer, so a slow client never holds a
# thread; the Django application runs in a pool of GUNICORN_THREADS threads per worker
# (console/asgi.py says why), and console/worker.py adds a deadline for headers and the
# connection limit.
wsgi_app = "console.asgi:application"
worker_class = "console.worker.ConsoleWorker"
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", 2 * multiprocessing.cpu_count() + 1))
# Connections a worker keeps open at once, slow ones included (more are answered 503): memory
# only, never a thread.
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", 1000))
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
