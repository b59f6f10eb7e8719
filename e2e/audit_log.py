"""Reading the kube-apiserver's audit log from a mark, across its rotation and its last half-written line.

The log backend rotates the file at --audit-log-maxsize (100 MB under kwokctl): it renames ``audit.log`` to
``audit-<time>.log`` and starts a new one, so a byte offset alone points into the wrong file afterwards. And the
kernel grows a file's size page by page while one write() is copied in, so a size read mid-write can end inside
a line. A mark is therefore the file's inode plus an offset snapped back to the last complete line, and reading
from it follows the inode to its rotated name and on into the files written since.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple


class AuditMark(NamedTuple):
    """A point in the audit log: the inode of the file then named audit.log, and a line-boundary offset in it."""

    inode: int
    offset: int


def _complete_size(path: Path, size: int) -> int:
    """``size`` snapped back to just after the last newline at or before it."""
    with open(path, "rb") as f:
        pos = size
        while pos > 0:
            start = max(0, pos - 65536)
            f.seek(start)
            chunk = f.read(pos - start)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                return start + cut + 1
            pos = start
    return 0


def mark(path: Path) -> AuditMark:
    """The end of what the audit log holds now, in complete lines."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return AuditMark(0, 0)
    return AuditMark(st.st_ino, _complete_size(path, st.st_size))


def _files_from(path: Path, since: AuditMark) -> list[tuple[Path, int]]:
    """(file, offset) to read in order: the file ``since`` was taken in (under whatever name it has now) from its
    offset, then every later file from its start, audit.log last."""
    st = path.stat() if path.exists() else None
    current = st.st_ino if st else 0
    if since.inode == current and st is not None and st.st_size < since.offset:
        return [(path, 0)]  # the inode number was reused by a new, shorter file
    if since.inode in (0, current):
        return [(path, since.offset if since.inode else 0)]
    rotated = sorted(path.parent.glob(f"{path.stem}-*{path.suffix}"), key=lambda p: p.stat().st_mtime)
    inodes = [p.stat().st_ino for p in rotated]
    if since.inode in inodes:
        i = inodes.index(since.inode)
        later = [(p, 0) for p in rotated[i + 1 :]]
        return [(rotated[i], since.offset), *later, (path, 0)]
    # The marked file was rotated away and deleted (maxbackup): what is left starts with the current file.
    return [(path, 0)]


def lines_since(path: Path, since: AuditMark) -> Iterator[bytes]:
    """Every complete line written to the audit log after ``since``; a last line still being written is left
    for the next read."""
    for file, offset in _files_from(path, since):
        try:
            with open(file, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            continue
        end = data.rfind(b"\n") + 1
        for line in data[:end].splitlines():
            if line.strip():
                yield line


def events_since(path: Path, since: AuditMark) -> list[dict[str, Any]]:
    """The audit events (decoded) written after ``since``."""
    return [json.loads(line) for line in lines_since(path, since)]


def all_lines(path: Path) -> Iterator[bytes]:
    """Every complete line the audit log and its rotated files still hold, oldest first."""
    rotated = sorted(path.parent.glob(f"{path.stem}-*{path.suffix}"), key=lambda p: p.stat().st_mtime)
    for file in [*rotated, path]:
        yield from lines_since(file, AuditMark(0, 0))
