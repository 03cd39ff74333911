"""The garbage collector's settings for a web process (called once, from feedapp.asgi).

A web process holds thousands of long-lived objects per live stream (its task,
generators, mailbox, socket protocol), and the API's requests make short-lived ones at a
high rate. With CPython's default thresholds (700, 10, 10) a young collection ran every
few hundred allocations, so the objects of a request still in flight (waiting for Kafka
or PostgreSQL) survived two of them and were promoted to the oldest generation; that
generation grew fast, and full collections followed every ten seconds or so, each
walking every stream's objects: 0.4 to 1.15 s with the event loop standing still,
collecting 10,000 to 20,000 objects (bench.hot_poll, 10,000 streams, measured with
gc.callbacks). Those pauses were the staleness tail of the hot-poll benchmark.

So, once the application is loaded:
- `gc.freeze()` moves what start-up made (modules, Django's registries, settings) to the
  permanent generation, which no collection walks again;
- the thresholds become GC_THRESHOLDS (default 50,000, 20, 100): a request's objects are
  usually gone before the first young collection that could see them, and a full
  collection waits for 100 middle ones (besides CPython's own rule that the oldest
  generation must have grown by a quarter).
"""

from __future__ import annotations

import gc
import logging

from django.conf import settings

log = logging.getLogger(__name__)


def tune_for_web_process() -> None:
    """Freeze the start-up objects and apply GC_THRESHOLDS; call once the app is loaded."""
    gc.collect()  # start-up's own garbage, before freezing what is left
    gc.freeze()
    thresholds = tuple(settings.GC_THRESHOLDS)
    gc.set_threshold(*thresholds)
    log.debug(
        "garbage collector: %d objects frozen, thresholds %s", gc.get_freeze_count(), thresholds
    )
