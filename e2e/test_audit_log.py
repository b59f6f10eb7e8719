"""The audit log reader (e2e/audit_log.py) on files laid out as kube-apiserver's log backend leaves them: no cluster.

CI once failed with "JSONDecodeError: Extra data" in test_idle_resyncs_make_no_write_calls: the reused cluster's
audit.log had been rotated at 100 MB between a byte offset being taken and read, so the offset pointed into the
middle of a line of the new file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from audit_log import AuditMark, all_lines, events_since, mark


def _line(n: int) -> bytes:
    return json.dumps({"n": n, "pad": "x" * 50}).encode() + b"\n"


def _write(path: Path, *ns: int) -> None:
    with open(path, "ab") as f:
        for n in ns:
            f.write(_line(n))


def _ns(events: list[dict[str, object]]) -> list[object]:
    return [e["n"] for e in events]


def test_a_half_written_line_is_neither_marked_past_nor_read(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    _write(log, 1, 2)
    with open(log, "ab") as f:
        f.write(_line(3)[:20])  # the kernel has copied in part of one write()
    m = mark(log)
    assert m.offset == 2 * len(_line(1)), "the mark stops at the last complete line"
    assert _ns(events_since(log, AuditMark(m.inode, 0))) == [1, 2], "the partial line is not decoded"
    with open(log, "ab") as f:
        f.write(_line(3)[20:])
    assert _ns(events_since(log, m)) == [3], "the line is read whole once it is complete"


def test_a_mark_follows_its_file_through_a_rotation(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    _write(log, 1, 2)
    m = mark(log)
    _write(log, 3)
    log.rename(tmp_path / "audit-2026-12-06T06-17-43.736.log")  # what the backend does at --audit-log-maxsize
    _write(log, 4, 5)
    assert _ns(events_since(log, m)) == [3, 4, 5]
    assert _ns(events_since(log, mark(log))) == []
    assert [json.loads(x)["n"] for x in all_lines(log)] == [1, 2, 3, 4, 5]


def test_two_rotations_since_the_mark_read_every_file_in_order(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    _write(log, 1)
    m = mark(log)
    _write(log, 2)
    first = tmp_path / "audit-2026-12-06T01-00-00.000.log"
    log.rename(first)
    _write(log, 3)
    second = tmp_path / "audit-2026-12-06T02-00-00.000.log"
    log.rename(second)
    os.utime(first, (1_000, 1_000))  # mtimes decide the order, as the backend's own names would
    os.utime(second, (2_000, 2_000))
    _write(log, 4)
    assert _ns(events_since(log, m)) == [2, 3, 4]


def test_a_rotated_file_already_deleted_leaves_the_current_one(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    _write(log, 1)
    m = mark(log)
    rotated = tmp_path / "audit-2026-12-06T06-17-43.736.log"
    log.rename(rotated)
    _write(log, 2)
    rotated.unlink()  # past --audit-log-maxbackup: the backend deletes it after opening the new file
    assert _ns(events_since(log, m)) == [2]
