"""Repository-wide pytest hooks.

In CI (CI=true) a skipped test is a failed test: every skip condition in this repo (a tool not built yet, no
vLLM venv, a foreign cluster) is a local convenience, never an excuse in CI where `make test` installs it all.
"""

from __future__ import annotations

import os

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI", "").lower() in ("1", "true", "yes") and report.skipped and \
            not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which counts as a failure: {report.longrepr}"
