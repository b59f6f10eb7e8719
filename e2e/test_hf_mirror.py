"""e2e/hf_mirror.py: olah serves the tiny model to the real huggingface_hub (the vLLM venv's). No cluster."""

from __future__ import annotations

import collections
import hashlib
import json
import os
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import hf_mirror as hm
import pytest
import vllm_local as vl

REPO = "qwen-e2e/tiny-qwen3"

# the client is the vLLM venv's huggingface_hub (the one vLLM pods use); without that venv vllm_python() fails
# with the command that installs it: a missing engine is a failure, not a skip
needs_vllm = pytest.mark.vllm


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return vl.ensure_tiny_model()


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[tuple[hm.HFMirror, str]]:
    hm.install()
    m = hm.HFMirror(tmp_path_factory.mktemp("hf"), host="127.0.0.1", port=vl.free_port())
    sha = m.add_model(REPO, model_dir)
    with m:
        yield m, sha


def hub(mirror: hm.HFMirror, tmp: Path, code: str) -> dict:
    """Run code with the vLLM venv's huggingface_hub against the mirror; it prints one JSON line last."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(
        HF_ENDPOINT=mirror.endpoint,
        HF_HOME=str(tmp / "hf-home"),  # an empty cache: every file must come from the server
        HF_HUB_DISABLE_TELEMETRY="1",
        NO_PROXY="*",
    )
    prelude = "import json, os, huggingface_hub as h\nfrom huggingface_hub import HfApi\n"
    r = subprocess.run(
        [str(vl.vllm_python()), "-c", prelude + textwrap.dedent(code)],
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 0, f"huggingface_hub client failed ({r.returncode}):\n{r.stderr[-4000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def files_of(d: Path) -> dict[str, bytes]:
    """Relative path -> content, leaving out huggingface_hub's own .cache/ of a local_dir."""
    return {
        p.relative_to(d).as_posix(): p.read_bytes()
        for p in sorted(d.rglob("*"))
        if p.is_file() and p.relative_to(d).parts[0] != ".cache"
    }


def sha256s(files: dict[str, bytes]) -> dict[str, str]:
    return {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@needs_vllm
def test_snapshot_download_main(mirror: tuple[hm.HFMirror, str], model_dir: Path, tmp_path: Path) -> None:
    m, sha = mirror
    since = m.log_offset()
    out = hub(
        m,
        tmp_path,
        f"""
        path = h.snapshot_download({REPO!r}, revision="main", local_dir="dl")
        api = HfApi()
        info = api.model_info({REPO!r}, revision="main")
        tree = [[f.path, f.size, f.blob_id] for f in api.list_repo_tree({REPO!r}, revision=info.sha, recursive=True)
                if isinstance(f, h.hf_api.RepoFile)]
        print(json.dumps({{"path": path, "sha": info.sha, "tree": tree}}))
        """,
    )
    src = files_of(model_dir)
    assert len(src) >= 5 and "model.safetensors" in src
    assert out["sha"] == sha
    assert sha256s(files_of(Path(out["path"]))) == sha256s(src)
    # each file fetched once, nothing else: the hub cache was empty and local_dir too
    assert collections.Counter(m.file_downloads(REPO, since)) == collections.Counter(list(src))
    # sizes and git blob ids from the tree API: what a downloader can check its files against
    assert sorted(map(tuple, out["tree"])) == sorted((k, len(v), git_blob_id(v)) for k, v in src.items())


@needs_vllm
def test_bad_revision_and_absent_repo_raise(mirror: tuple[hm.HFMirror, str], tmp_path: Path) -> None:
    m, _ = mirror
    since = m.log_offset()
    out = hub(
        m,
        tmp_path,
        f"""
        errors = []
        for repo, rev in [({REPO!r}, "no-such-branch"), ({REPO!r}, "0" * 40), ("qwen-e2e/absent", "main")]:
            try:
                h.snapshot_download(repo, revision=rev, local_dir="dl-" + rev)
                errors.append(None)
            except Exception as e:
                cause = e if isinstance(e, h.errors.HfHubHTTPError) else e.__cause__
                errors.append([type(e).__name__, getattr(getattr(cause, "response", None), "status_code", None)])
        print(json.dumps(errors))
        """,
    )
    # A 40-hex revision is taken as a commit (no revision lookup): olah's tree listing of an unknown
    # one is a 404, which snapshot_download reports as LocalEntryNotFoundError. (Its /revision/ and
    # /resolve/ routes answer 500 for it, which huggingface_hub retries for ~25 s.)
    assert out == [["RepositoryNotFoundError", 401], ["LocalEntryNotFoundError", 404], ["RepositoryNotFoundError", 401]]
    assert m.file_downloads(REPO, since) == []
    assert not list(tmp_path.glob("dl-*/*.json"))


@needs_vllm
def test_second_commit_on_a_branch(mirror: tuple[hm.HFMirror, str], model_dir: Path, tmp_path: Path) -> None:
    m, main_sha = mirror
    dev_sha = m.add_commit(REPO, {"extra/notes.txt": b"second commit\n", "generation_config.json": None}, branch="dev")
    assert dev_sha != main_sha
    since = m.log_offset()
    out = hub(
        m,
        tmp_path,
        f"""
        path = h.snapshot_download({REPO!r}, revision="dev", local_dir="dl")
        api = HfApi()
        print(json.dumps({{"path": path, "dev": api.model_info({REPO!r}, revision="dev").sha,
                          "main": api.model_info({REPO!r}, revision="main").sha}}))
        """,
    )
    assert (out["dev"], out["main"]) == (dev_sha, main_sha)
    want = files_of(model_dir)
    del want["generation_config.json"]
    want["extra/notes.txt"] = b"second commit\n"
    assert sha256s(files_of(Path(out["path"]))) == sha256s(want)
    assert sorted(m.file_downloads(REPO, since)) == sorted(want)


@needs_vllm
def test_commits_are_reproducible(tmp_path: Path, model_dir: Path) -> None:
    a, b = hm.HFMirror(tmp_path / "a"), hm.HFMirror(tmp_path / "b")
    sha = a.add_model(REPO, model_dir)
    assert b.add_model(REPO, model_dir) == sha and len(sha) == 40
    # the same sha a second later or elsewhere: fixed names and dates, not the clock's or the user's
    who = hm.git(a.repo_dir(REPO), "show", "-s", "--format=%an <%ae> %aI|%cn <%ce> %cI", sha)
    fixed = "qwen-operator e2e <e2e@qwen-operator.invalid> 2024-01-01T00:00:00+00:00"
    assert who == f"{fixed}|{fixed}"


def test_access_log_parsing(tmp_path: Path) -> None:
    m = hm.HFMirror(tmp_path)
    tmp_path.mkdir(exist_ok=True)
    head = '2026-01-01 00:00:00 | INFO | stdout | INFO:     10.244.0.7:5 - "GET /api/models/a/b/revision/main HTTP/1.1" 200 OK\n'
    m.log_path.write_text(head)
    since = m.log_offset()
    with open(m.log_path, "a") as f:
        f.write('INFO:     10.244.0.7:6 - "HEAD /a/b/resolve/main/config.json HTTP/1.1" 200 OK\n')
        f.write('x | INFO:     10.244.0.7:6 - "GET /a/b/resolve/abc/sub/f%20g.bin?x=1 HTTP/1.1" 200 OK\n')
        f.write('INFO:     10.244.0.7:6 - "GET /a/b/resolve/abc/missing HTTP/1.1" 404 Not Found\n')
        f.write('INFO:     10.244.0.7:6 - "GET /a/bc/resolve/abc/other HTTP/1.1" 200 OK\n')
        f.write('INFO:     10.244.0.7:6 - "GET /a/b/resolve/abc/partial HTTP/1.1" 200')  # still being written
    assert [r.method for r in m.requests()] == ["GET", "HEAD", "GET", "GET", "GET"]
    assert m.requests(since)[0] == hm.Request("HEAD", "/a/b/resolve/main/config.json", 200, "10.244.0.7:6")
    assert m.file_downloads("a/b", since) == ["sub/f g.bin"]
    assert m.file_downloads("a/b") == ["sub/f g.bin"]


# ---- the weight cache's hydration script (operator/qwen_operator/jobs/hydrate_weights.py) against this server -------

HYDRATE = Path(__file__).resolve().parents[1] / "operator" / "qwen_operator" / "jobs" / "hydrate_weights.py"


def hydrate(mirror: hm.HFMirror, volume: Path, **env: str) -> tuple[int, dict]:
    """Run the Job's script as the Job does (the serving image's Python, its env), outside a pod."""
    term = volume.parent / f"{volume.name}.term"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "QWEN_"))}
    base.update(HF_ENDPOINT=mirror.endpoint, HF_HOME=str(volume.parent / "hf-home"), QWEN_VOLUME=str(volume))
    env = {**base, "QWEN_TERMINATION_LOG": str(term), **env}
    r = subprocess.run([str(vl.vllm_python()), str(HYDRATE)], env=env, capture_output=True, text=True, timeout=300)
    assert term.exists(), r.stdout + r.stderr
    return r.returncode, json.loads(term.read_text())


@needs_vllm
def test_hydration_downloads_verifies_and_records_once(
    mirror: tuple[hm.HFMirror, str], model_dir: Path, tmp_path: Path
) -> None:
    m, sha = mirror
    vol = tmp_path / "vol"
    before = m.log_offset()
    code, out = hydrate(m, vol, QWEN_MODEL=REPO, QWEN_REVISION="main", QWEN_VOLUME_BYTES=str(64 << 20))
    assert code == 0 and out["ok"] and out["commit"] == sha and not out["reused"], out
    assert files_of(vol / "model") == files_of(model_dir)
    assert out["files"] == len(files_of(model_dir)) and out["bytes"] == sum(map(len, files_of(model_dir).values()))
    assert json.loads((vol / "hydration.json").read_text())["commit"] == sha
    assert sorted(m.file_downloads(REPO, since=before)) == sorted(files_of(model_dir))
    # A second run (a second Job, a deleted and re-created one) finds the record and downloads nothing.
    again = m.log_offset()
    code, out = hydrate(m, vol, QWEN_MODEL=REPO, QWEN_REVISION="main")
    assert code == 0 and out["reused"] and m.requests(since=again) == []


@needs_vllm
@pytest.mark.parametrize(
    ("env", "reason", "code"),
    [
        ({"QWEN_MODEL": REPO, "QWEN_REVISION": "no-such-branch"}, "RevisionNotFound", 3),
        ({"QWEN_MODEL": "qwen-e2e/absent"}, "ModelNotFound", 2),
        ({"QWEN_MODEL": REPO, "QWEN_VOLUME_BYTES": "100000"}, "InsufficientSpace", 5),
    ],
)
def test_hydration_failures_say_why_and_leave_no_checkpoint(
    mirror: tuple[hm.HFMirror, str], tmp_path: Path, env: dict[str, str], reason: str, code: int
) -> None:
    m, _ = mirror
    vol = tmp_path / "vol"
    before = m.log_offset()
    got, out = hydrate(m, vol, **env)
    assert (got, out["ok"], out["reason"]) == (code, False, reason), out
    assert sorted(p.name for p in vol.iterdir()) == [".lock"]  # nothing a pod could mount
    assert m.file_downloads(env["QWEN_MODEL"], since=before) == []  # refused before downloading


GATED = "qwen-e2e/gated-qwen3"


@needs_vllm
def test_gated_model_needs_a_granted_token(mirror: tuple[hm.HFMirror, str], model_dir: Path, tmp_path: Path) -> None:
    """The Hub's gating (hf_mirror.HubGate, in front of olah): no token and a token without access each fail as
    GatedModel, say which, and leave the volume empty; the granted token hydrates."""
    m, _ = mirror
    sha = m.add_model(GATED, model_dir)
    with hm.HubGate(m, {GATED: {hm.TEST_GRANTED_TOKEN}}, host="127.0.0.1", port=vl.free_port()) as gate:
        cases = [({}, 401, "set model.source.tokenSecretRef"), ({"HF_TOKEN": "hf_not_granted"}, 403, "has no access")]
        for i, (token_env, status, words) in enumerate(cases):
            vol = tmp_path / f"vol{i}"
            code, out = hydrate(m, vol, QWEN_MODEL=GATED, HF_ENDPOINT=gate.endpoint, **token_env)
            assert (code, out["reason"]) == (4, "GatedModel") and words in out["message"], out
            assert sorted(p.name for p in vol.iterdir()) == [".lock"]  # no staging, no model directory
            assert {d.status for d in gate.refused(GATED)} >= {status}
        assert m.file_downloads(GATED) == []  # the gate refused every download before olah saw it
        vol = tmp_path / "granted"
        code, out = hydrate(m, vol, QWEN_MODEL=GATED, HF_ENDPOINT=gate.endpoint, HF_TOKEN=hm.TEST_GRANTED_TOKEN)
        assert code == 0 and out["ok"] and out["commit"] == sha, out
        assert files_of(vol / "model") == files_of(model_dir)
        assert hm.TEST_GRANTED_TOKEN not in json.dumps(out) + (vol / "hydration.json").read_text()
