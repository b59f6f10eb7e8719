"""The real vLLM logs of tests/fixtures/vllm-0.32.0-cpu/ and a helper that reads them as the API server serves
them with timestamps=true (shared by tests/test_coldstart.py and tests/test_coldstart_plan.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from qwen_operator.domain.coldstart import split_log

FIXTURES = Path(__file__).parent / "fixtures" / "vllm-0.32.0-cpu"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def with_kubelet_timestamps(text: str, year: int = 2026) -> str:
    """SYNTHETIC: the real log with a kubelet-style RFC 3339 prefix on every line, as the API server returns it
    with timestamps=true; each line gets vLLM's own time (in `year`, UTC) plus half a second, lines without one the
    previous line's.  The vLLM text after the prefix is the real one."""
    out, last = [], datetime(year, 1, 1, tzinfo=UTC)
    for line in text.splitlines():
        own = split_log(line)[0].vllm_time if line else None
        if own is not None:
            last = own.replace(year=year, tzinfo=UTC) + timedelta(milliseconds=500)
        out.append(last.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z " + line)
    return "\n".join(out) + "\n"
