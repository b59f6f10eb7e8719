"""The operator's periodic work: resync every deployment, and run the autoscaler where it is enabled.

One loop over the in-memory index of deployments rather than per-object Kopf timers: Kopf protects timers with a
finalizer on each object, which would need patch rights on QwenDeployments and would block their deletion
whenever the operator is not running. A loop needs neither.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import kopf

from . import autoscaler, controller
from .config import CONFIG
from .indexes import Index, Indexes, all_indexes
from .state import OperatorState, from_memo

log = logging.getLogger("qwen_operator.loops")


def _keys(index: Index) -> list[Any]:
    for _ in range(5):  # the watch may add or remove keys while we copy them
        try:
            return list(index.keys())
        except RuntimeError:
            time.sleep(0.01)
    return []


def run_loop(state: OperatorState, indexes: Indexes, stop: threading.Event) -> None:
    last_resync: dict[Any, float] = {}
    tick = min(CONFIG.autoscale_tick_seconds, CONFIG.resync_seconds)
    stop.wait(CONFIG.resync_seconds)  # resource handlers do the first pass as the watches start
    while not stop.is_set():
        now = time.monotonic()
        for key in _keys(indexes["deployments"]):
            namespace, name = key
            try:
                if now - last_resync.get(key, 0.0) >= CONFIG.resync_seconds:
                    last_resync[key] = now
                    controller.reconcile(state, namespace, name, indexes, "resync")
                autoscaler.autoscale(state, namespace, name, indexes)
            except Exception:  # one deployment's failure must not stop the others; retried next pass
                log.exception("%s/%s: periodic pass failed", namespace, name)
        for key in set(last_resync) - set(_keys(indexes["deployments"])):
            last_resync.pop(key, None)
        stop.wait(tick)


@kopf.on.startup()
def start_loop(memo: kopf.Memo, **kw: Any) -> None:
    stop = threading.Event()
    memo["loop_stop"] = stop
    threading.Thread(
        target=run_loop, args=(from_memo(memo), all_indexes(kw), stop), name="qwen-resync", daemon=True
    ).start()


@kopf.on.cleanup()
def stop_loop(memo: kopf.Memo, **_: Any) -> None:
    stop = memo.get("loop_stop")
    if isinstance(stop, threading.Event):
        stop.set()
