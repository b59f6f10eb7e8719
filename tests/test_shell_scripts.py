"""The cluster scripts run under `set -o pipefail`, where `producer | grep -q` and `producer | head` race:
the reader exits on its first line, and a producer still writing dies of SIGPIPE (status 141), which
pipefail turns into a failed pipeline. CI once failed this way on `ctr images ls -q | grep -qxF`."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# A reader that may stop before its producer is done: grep with -q (alone or among other flags), head.
EARLY_EXIT_READER = re.compile(r"\|\s*(grep\s+-[A-Za-z]*q[A-Za-z]*\b|head\b)")


def _pipefail_scripts() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "*.sh", ".ci/run"], cwd=ROOT, capture_output=True, text=True, check=True)
    paths = [ROOT / p for p in out.stdout.split()]
    return [p for p in paths if "pipefail" in p.read_text()]


def test_there_are_pipefail_scripts_to_check() -> None:
    names = {p.name for p in _pipefail_scripts()}
    assert {"real-node.sh", "cluster.sh"} <= names


@pytest.mark.parametrize("script", _pipefail_scripts(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_pipe_into_a_reader_that_exits_early(script: Path) -> None:
    bad = [
        f"{script.relative_to(ROOT)}:{n}: {line.strip()}"
        for n, line in enumerate(script.read_text().splitlines(), start=1)
        if not line.lstrip().startswith("#") and EARLY_EXIT_READER.search(line)
    ]
    assert not bad, "read the producer's output whole first (see has_image in e2e/cluster/real-node.sh):\n" + "\n".join(
        bad
    )


def _shell_function(script: Path, name: str) -> str:
    match = re.search(rf"^{name}\(\) \{{\n.*?^\}}\n", script.read_text(), flags=re.S | re.M)
    assert match, f"{name} not found in {script}"
    return match.group(0)


# A `ctr images ls -q` that writes its lines one write at a time, the wanted image first.
SLOW_CTR = "ctr_() { echo localhost/qwen/pause:1; sleep 0.2; echo sha256:1eedec64; }"


def _run_under_pipefail(body: str) -> int:
    return subprocess.run(["bash", "-c", f"set -euo pipefail\n{body}"], capture_output=True).returncode


def test_the_race_is_real_for_the_old_form() -> None:
    # Guards the guard: the form the check above forbids does fail on this producer.
    assert _run_under_pipefail(f"{SLOW_CTR}\nctr_ images ls -q | grep -qxF localhost/qwen/pause:1") == 141


def test_has_image_finds_an_image_listed_before_others() -> None:
    has_image = _shell_function(ROOT / "e2e/cluster/real-node.sh", "has_image")
    assert _run_under_pipefail(f"{SLOW_CTR}\n{has_image}\nhas_image localhost/qwen/pause:1") == 0
    assert _run_under_pipefail(f"{SLOW_CTR}\n{has_image}\nhas_image localhost/qwen/pause:2") == 1
    # A partial name is not a match (-x): the tag must be the whole line.
    assert _run_under_pipefail(f"{SLOW_CTR}\n{has_image}\nhas_image localhost/qwen/pause") == 1
