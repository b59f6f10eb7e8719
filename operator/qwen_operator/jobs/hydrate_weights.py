"""Fill a model-weight cache volume once: runs inside the hydration Job's pod (manifests/weights.py renders the Job).

It runs with the serving image's own Python and Hugging Face client (huggingface_hub ships with vLLM), so it uses
only the standard library and huggingface_hub, and the operator embeds this file's text in the Job.  Steps:

1. Take the volume's lock (one writer at a time, even on a ReadWriteMany volume shared by several Jobs).
2. A volume that already holds a verified checkpoint is reported as it is and never rewritten.
3. Resolve the revision to a commit; list the commit's files with their sizes and hashes.
4. Refuse before downloading anything when the files do not fit in the volume.
5. Download that commit (not the branch: it may move meanwhile) into a staging directory, verify every file's
   size and hash against the hub's metadata, then rename it into place and write the record.

Serving pods mount only the renamed directory, and only after the operator saw this Job succeed, so nothing ever
mounts a partial cache.  The outcome goes to the container's termination message as JSON, which the operator
reads (the one writer of status); exit codes 2-6 are failures a retry cannot fix, 7 a retryable download error.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL_DIR = "model"  # domain/weight_cache.py: MODEL_DIR, RECORD_FILE
RECORD_FILE = "hydration.json"
STAGING_PREFIX = ".staging-"

EXIT_CODES = {
    "ModelNotFound": 2,
    "RevisionNotFound": 3,
    "GatedModel": 4,
    "InsufficientSpace": 5,
    "VerifyFailed": 6,
    "DownloadFailed": 7,
}


class HydrationError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    git_sha1: str | None  # the git blob id (files stored in git)
    sha256: str | None  # the LFS object id (files stored in LFS)


def git_blob_sha1(path: Path) -> str:
    """Git's object id of a file: sha1 of 'blob <size>\\0' and the content (what the hub reports for non-LFS files)."""
    h = hashlib.sha1(usedforsecurity=False)  # git's object id
    h.update(b"blob %d\0" % path.stat().st_size)
    _feed(h, path)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    _feed(h, path)
    return h.hexdigest()


def _feed(h: Any, path: Path) -> None:
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)


def verify(root: Path, files: list[RemoteFile]) -> list[str]:
    """What differs between the downloaded tree and the hub's metadata, in plain words (empty: all verified)."""
    problems: list[str] = []
    for rf in files:
        local = root / rf.path
        if not local.is_file():
            problems.append(f"{rf.path}: missing")
            continue
        size = local.stat().st_size
        if size != rf.size:
            problems.append(f"{rf.path}: {size} bytes, the hub says {rf.size}")
        elif rf.sha256 is not None and file_sha256(local) != rf.sha256:
            problems.append(f"{rf.path}: sha256 differs from the hub's LFS object id")
        elif rf.sha256 is None and rf.git_sha1 is not None and git_blob_sha1(local) != rf.git_sha1:
            problems.append(f"{rf.path}: git blob id differs from the hub's")
    return problems


def free_bytes(volume: Path, requested: int | None) -> int:
    """Room left for the checkpoint: the filesystem's free space, capped by the PVC's requested size less what the
    volume already holds (a hostPath-backed or thin-provisioned volume may report the whole disk as free)."""
    free = shutil.disk_usage(volume).free
    if requested is None:
        return free
    used = sum(p.stat().st_size for p in volume.rglob("*") if p.is_file())
    return max(0, min(free, requested - used))


def resolve_commit(api: Any, model: str, revision: str, has_token: bool) -> str:
    """The commit a revision names now; a missing model, revision or permission is a HydrationError."""
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        return str(api.model_info(model, revision=revision).sha)
    except GatedRepoError as e:
        raise HydrationError("GatedModel", _gated(model, has_token)) from e
    except RevisionNotFoundError as e:
        raise HydrationError("RevisionNotFound", f"revision {revision} does not exist in {model}") from e
    except RepositoryNotFoundError as e:
        # Some servers (olah, an offline mirror) answer a bad revision as a missing repository: ask for the
        # repository's refs, which exist whenever the repository does.
        try:
            api.list_repo_refs(model)
        except HfHubHTTPError:  # RepositoryNotFoundError from the Hub; olah answers 404 for a missing one
            hint = "" if has_token else " (a private model needs model.source.tokenSecretRef)"
            raise HydrationError("ModelNotFound", f"model {model} was not found{hint}") from e
        raise HydrationError("RevisionNotFound", f"revision {revision} does not exist in {model}") from e


def _gated(model: str, has_token: bool) -> str:
    if has_token:
        return f"model {model} is gated and the token in model.source.tokenSecretRef has no access to it"
    return f"model {model} is gated: set model.source.tokenSecretRef to a token that was granted access"


def list_files(api: Any, model: str, commit: str) -> list[RemoteFile]:
    from huggingface_hub.hf_api import RepoFile

    out = []
    for entry in api.list_repo_tree(model, revision=commit, recursive=True):
        if isinstance(entry, RepoFile):
            lfs = entry.lfs
            sha256 = (lfs.get("sha256") if isinstance(lfs, dict) else getattr(lfs, "sha256", None)) if lfs else None
            out.append(RemoteFile(entry.path, int(entry.size), entry.blob_id, sha256))
    return out


@dataclass
class Job:
    model: str
    revision: str
    volume: Path
    requested_bytes: int | None
    endpoint: str | None
    token: str | None

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Job:
        req = env.get("QWEN_VOLUME_BYTES")
        return cls(
            model=env["QWEN_MODEL"],
            revision=env.get("QWEN_REVISION") or "main",
            volume=Path(env.get("QWEN_VOLUME", "/cache")),
            requested_bytes=int(req) if req else None,
            endpoint=env.get("HF_ENDPOINT") or None,
            token=env.get("HF_TOKEN") or None,
        )


def existing_record(volume: Path) -> dict[str, Any] | None:
    rec = volume / RECORD_FILE
    if rec.is_file() and (volume / MODEL_DIR).is_dir():
        loaded: dict[str, Any] = json.loads(rec.read_text())
        return loaded
    return None


def hydrate(job: Job) -> dict[str, Any]:
    """Steps 3-5 of the module docstring; the record written (or found)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError

    found = existing_record(job.volume)
    if found is not None:
        return {**found, "reused": True}
    _clear_leftovers(job.volume)
    api = HfApi(endpoint=job.endpoint, token=job.token)
    commit = resolve_commit(api, job.model, job.revision, job.token is not None)
    try:
        files = list_files(api, job.model, commit)
    except GatedRepoError as e:
        raise HydrationError("GatedModel", _gated(job.model, job.token is not None)) from e
    total = sum(f.size for f in files)
    room = free_bytes(job.volume, job.requested_bytes)
    if total > room:
        raise HydrationError(
            "InsufficientSpace",
            f"{job.model}@{commit[:12]} needs {total} bytes in {len(files)} files; the volume has {room} bytes free",
        )
    staging = job.volume / f"{STAGING_PREFIX}{os.getpid()}"
    t0 = time.monotonic()
    try:
        download_verified(job, commit, files, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # a failed run leaves the volume as it found it
        raise
    record = {
        "model": job.model,
        "revision": job.revision,
        "commit": commit,
        "files": len(files),
        "bytes": total,
        "seconds": round(time.monotonic() - t0, 1),
        "hydratedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    os.rename(staging, job.volume / MODEL_DIR)
    _write_atomically(job.volume / RECORD_FILE, json.dumps(record, sort_keys=True))
    return {**record, "reused": False}


def download_verified(job: Job, commit: str, files: list[RemoteFile], staging: Path) -> None:
    """Download the commit into staging and check it against the hub's metadata; a HydrationError names what failed."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError

    try:
        snapshot_download(job.model, revision=commit, local_dir=staging, endpoint=job.endpoint, token=job.token)
    except GatedRepoError as e:  # the Hub lists a gated repo's files to anyone and refuses only the download
        raise HydrationError("GatedModel", _gated(job.model, job.token is not None)) from e
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise HydrationError("InsufficientSpace", f"the volume filled up while downloading: {e}") from e
        raise HydrationError("DownloadFailed", f"download of {job.model}@{commit[:12]} failed: {e}") from e
    except HfHubHTTPError as e:
        raise HydrationError("DownloadFailed", f"download of {job.model}@{commit[:12]} failed: {e}") from e
    shutil.rmtree(staging / ".cache", ignore_errors=True)  # the client's own bookkeeping, not the checkpoint
    problems = verify(staging, files)
    if problems:
        raise HydrationError("VerifyFailed", "; ".join(problems[:5]) + (" ..." if len(problems) > 5 else ""))


def _clear_leftovers(volume: Path) -> None:
    """Remove what an interrupted run left: staging directories, and a model directory without its record."""
    for p in volume.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(p, ignore_errors=True)
    if (volume / MODEL_DIR).exists() and not (volume / RECORD_FILE).exists():
        shutil.rmtree(volume / MODEL_DIR, ignore_errors=True)


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def main(env: dict[str, str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    job = Job.from_env(env)
    termination_log = Path(env.get("QWEN_TERMINATION_LOG", "/dev/termination-log"))
    job.volume.mkdir(parents=True, exist_ok=True)
    with (job.volume / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # blocks while another writer holds the volume
        try:
            outcome: dict[str, Any] = {"ok": True, **hydrate(job)}
            code = 0
        except HydrationError as e:
            outcome = {"ok": False, "reason": e.reason, "message": e.message}
            code = EXIT_CODES[e.reason]
        except Exception as e:  # the endpoint unreachable, a timeout: worth a retry (the Job's backoffLimit)
            outcome = {"ok": False, "reason": "DownloadFailed", "message": f"{type(e).__name__}: {e}"}
            code = EXIT_CODES["DownloadFailed"]
    line = json.dumps(outcome, sort_keys=True)
    print(f"hydrate: {line}", flush=True)
    try:
        termination_log.write_text(line[:4000])  # the kubelet keeps at most 4096 bytes of it
    except OSError:
        pass  # not in a pod
    return code


if __name__ == "__main__":
    sys.exit(main())
