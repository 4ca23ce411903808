"""Settings for the webhook ingest benchmark's server (bench/bench_webhooks.py).

The project's settings, with a URLconf that adds ``/bench/bare/``: a trivial
DRF endpoint served by the same gunicorn in the same run, the baseline the
webhook endpoints are measured against.  Not named ``bench_*.py``, so
``bench/run.py`` does not take it for a benchmark.
"""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.webhook_urls"
