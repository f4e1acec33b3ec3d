"""Keep the cyclic garbage collector off the serving state: the /rank tail's gen-2 pauses.

The serving state (the item cache's ids and title index, the retrieval marts' per-user lists, the recall index, the
models, pandas and BentoML's own modules) is hundreds of thousands of long-lived container objects. CPython's
gen-2 collection walks every one of them, on whichever request's allocation happens to trigger it: a pause of
tens of milliseconds in one request in a few hundred, which is the p99. :func:`freeze_loaded`, called once the state
is loaded and after every swap of it, collects the loading's garbage, then moves everything alive into the
permanent generation (``gc.freeze``), which collections skip: a request's collections then walk only what requests
allocated since. Frozen objects are still freed by reference counting when the state is replaced; the next
:func:`freeze_loaded` unfreezes first, so cycles in a replaced state are collected then.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger("shoprank.serving")


def freeze_loaded() -> int:
    """Collect, then freeze every object alive now (``gc.freeze``); returns how many are frozen. A full collection:
    call it after loading or swapping the state, not per request."""
    started = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("gc: %d objects frozen in %.0f ms", frozen, (time.perf_counter() - started) * 1000)
    return frozen
