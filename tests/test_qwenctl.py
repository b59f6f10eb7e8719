"""qwenctl, called in-process: output, exit codes, and bad input reported in one line without a traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from qwen_operator.cli.qwenctl import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def assert_usage_error(rc: int, out: str, err: str, *needles: str) -> None:
    """Exit code 2, exactly one line on stderr starting with 'qwenctl: error:', no traceback anywhere."""
    assert rc == 2, (rc, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("qwenctl: error: "), err
    assert "Traceback" not in out + err
    for n in needles:
        assert n in lines[0], (n, lines[0])


# ---- fit ---------------------------------------------------------------------------------------------------------


def test_fit_qwen3_8b_on_h100_fits(capsys):
    rc, out, err = run(capsys, "fit", "Qwen/Qwen3-8B", "--gpu", "H100")
    assert rc == 0, out + err
    assert err == ""
    assert "Traceback" not in out
    # The fit line gives the memory numbers and how many full-length sequences fit.
    assert "Qwen/Qwen3-8B" in out and "NVIDIA-H100-80GB-HBM3" in out
    assert "weights" in out and "GiB" in out
    assert re.search(r"\d+ full-length sequences? fits? at once", out), out
    assert "does not fit" not in out.lower()


def test_fit_json_has_the_numbers(capsys):
    import json

    rc, out, _ = run(capsys, "fit", "Qwen/Qwen3-8B", "--gpu", "H100", "--json")
    assert rc == 0
    f = json.loads(out)
    assert f["fits"] is True and f["gpus"] == 1
    assert 14 < f["weights_gib"] < 18  # 8.2B parameters in bf16
    assert f["kv_cache_gib"] > 0 and f["full_length_sequences"] >= 1


def test_fit_72b_on_one_h100_fails_and_suggests_more_tensor_parallelism(capsys):
    rc, out, err = run(capsys, "fit", "Qwen/Qwen2.5-72B-Instruct", "--gpu", "H100", "--max-model-len", "32768")
    assert rc == 1, out + err
    assert "Traceback" not in out + err
    text = out + err
    assert "does not fit" in text.lower(), text
    assert re.search(r"raise parallelism\.tensor to \d+", text), text
    assert "GiB" in text


def test_fit_72b_with_tp4_fits(capsys):
    rc, out, err = run(
        capsys, "fit", "Qwen/Qwen2.5-72B-Instruct", "--gpu", "H100", "--max-model-len", "32768", "--tp", "4"
    )
    assert rc == 0, out + err


def test_fit_unknown_model(capsys):
    assert_usage_error(*run(capsys, "fit", "Qwen/Qwen9-1T", "--gpu", "H100"), "unknown model", "Qwen/Qwen9-1T")


def test_fit_unknown_gpu(capsys):
    assert_usage_error(*run(capsys, "fit", "Qwen/Qwen3-8B", "--gpu", "TPU-v5"), "unknown GPU", "TPU-v5")


@pytest.mark.parametrize("flag", ["--tp", "--pp"])
def test_fit_zero_parallelism(capsys, flag):
    assert_usage_error(*run(capsys, "fit", "Qwen/Qwen3-8B", "--gpu", "H100", flag, "0"), "at least 1")


def test_argparse_errors_exit_2_without_traceback(capsys):
    rc, out, err = run(capsys, "fit", "Qwen/Qwen3-8B", "--tp", "two")
    assert rc == 2
    assert "Traceback" not in out + err
    assert "invalid int value" in err


def test_no_subcommand_is_a_usage_error(capsys):
    rc, _, err = run(capsys)
    assert rc == 2 and "Traceback" not in err


def test_help_exits_0(capsys):
    rc, out, _ = run(capsys, "--help")
    assert rc == 0 and "validate" in out and "fit" in out


# ---- plan --------------------------------------------------------------------------------------------------------


def test_plan_peak_throughput_and_replicas(capsys):
    rc, out, err = run(
        capsys,
        "plan",
        "--daily-users",
        "1000",
        "--turns",
        "50",
        "--share",
        "0.3",
        "--input-tokens",
        "300",
        "--output-tokens",
        "400",
        "--peak",
        "5",
    )
    assert rc == 0, err
    # 1000 users x 50 turns x 0.3 = 15,000 requests/day; x 400 output tokens / 86,400 s = 69.4/s; x5 at peak.
    peak = re.search(r"output tokens/s at peak:\s*([\d,.]+)", out)
    assert peak, out
    assert float(peak.group(1).replace(",", "")) == pytest.approx(347.2, abs=0.5)
    failover = re.search(r"replicas with failover:\s*(\d+)", out)
    assert failover and int(failover.group(1)) == 2, out


def _numbers(out: str) -> dict[str, float]:
    return {
        k.strip(): float(v.split()[0].replace(",", ""))
        for k, v in (line.split(":", 1) for line in out.splitlines() if ":" in line)
    }


def test_plan_reproduces_the_founding_notes_sizing_example(capsys):
    """1,000 users x 50 turns, 30 % share, 300/400 tokens, peak 5x: about 70 output tokens/s on average and 350 at
    peak, one 4xH100 box (about 500 output tokens/s) plus one for failover."""
    rc, out, err = run(
        capsys,
        "plan",
        "--daily-users",
        "1000",
        "--turns",
        "50",
        "--share",
        "0.3",
        "--input-tokens",
        "300",
        "--output-tokens",
        "400",
        "--peak",
        "5",
    )
    assert rc == 0, err
    n = _numbers(out)
    assert n["model calls/day served"] == 15_000
    assert n["output tokens/s average"] == pytest.approx(69.4, abs=0.1)  # "about 70"
    assert n["output tokens/s at peak"] == pytest.approx(347.2, abs=0.1)  # "about 350"
    assert n["replicas for peak"] == 1 and n["replicas with failover"] == 2


def test_plan_calls_per_request_multiply_the_load(capsys):
    base = [
        "plan",
        "--daily-users",
        "1000",
        "--turns",
        "50",
        "--share",
        "0.3",
        "--input-tokens",
        "300",
        "--output-tokens",
        "400",
        "--peak",
        "5",
    ]
    rc, out, err = run(capsys, *base, "--calls-per-request", "3")
    assert rc == 0, err
    n = _numbers(out)
    assert n["model calls/day served"] == 45_000
    assert n["output tokens/s at peak"] == pytest.approx(3 * 347.2, abs=0.5)
    assert n["replicas for peak"] == 3 and n["replicas with failover"] == 4  # 1,042 tok/s over 500 per replica
    assert_usage_error(*run(capsys, *base, "--calls-per-request", "0"), "calls per request")


def test_every_flag_has_help():
    import argparse

    from qwen_operator.cli.qwenctl import parser

    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        for action in p._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help, f"qwenctl {name} {action.option_strings or action.dest} has no help text"


def test_plan_rejects_nonsense(capsys):
    assert_usage_error(
        *run(
            capsys,
            "plan",
            "--daily-users",
            "1000",
            "--turns",
            "50",
            "--input-tokens",
            "300",
            "--output-tokens",
            "400",
            "--share",
            "1.5",
        )
    )


# ---- validate ----------------------------------------------------------------------------------------------------


def test_examples_exist():
    assert len(EXAMPLES) >= 3


def test_validate_all_examples(capsys):
    rc, out, err = run(capsys, "validate", *map(str, EXAMPLES))
    assert rc == 0, out + err
    assert out.count("ok  ") == len(EXAMPLES), out
    assert "FAIL" not in out


def test_validate_reports_a_spec_that_does_not_fit(tmp_path, capsys):
    f = tmp_path / "big.yaml"
    f.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "qwenops.dev/v1alpha1",
                "kind": "QwenDeployment",
                "metadata": {"name": "big"},
                "spec": {
                    "model": {"name": "Qwen/Qwen2.5-72B-Instruct"},
                    "gpu": {"product": "NVIDIA-H100-80GB-HBM3"},
                    "serving": {"maxModelLen": 32768},
                },
            }
        )
    )
    rc, out, err = run(capsys, "validate", str(f))
    assert rc == 1, out + err
    assert out.startswith("FAIL") and "DoesNotFit" in out


def test_validate_malformed_yaml(tmp_path, capsys):
    f = tmp_path / "broken.yaml"
    f.write_text("apiVersion: qwenops.dev/v1alpha1\nkind: QwenDeployment\nspec: {model: [unclosed\n")
    assert_usage_error(*run(capsys, "validate", str(f)), "not valid YAML", str(f))


def test_validate_yaml_that_is_not_a_qwendeployment(tmp_path, capsys):
    f = tmp_path / "deploy.yaml"
    f.write_text(
        yaml.safe_dump(
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": {"replicas": 1}}
        )
    )
    assert_usage_error(*run(capsys, "validate", str(f)), "not a QwenDeployment")


def test_validate_yaml_scalar(tmp_path, capsys):
    f = tmp_path / "scalar.yaml"
    f.write_text("just a string\n")
    assert_usage_error(*run(capsys, "validate", str(f)), "expected a YAML mapping")


def test_validate_empty_file(tmp_path, capsys):
    f = tmp_path / "empty.yaml"
    f.write_text("")
    assert_usage_error(*run(capsys, "validate", str(f)), "no QwenDeployment")


def test_validate_missing_file(tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    assert_usage_error(*run(capsys, "validate", str(missing)), "cannot read", str(missing))


def test_render_missing_file(tmp_path, capsys):
    assert_usage_error(*run(capsys, "render", str(tmp_path / "nope.yaml")), "cannot read")


# ---- render ------------------------------------------------------------------------------------------------------


def test_render_qwen3_8b_example(capsys):
    rc, out, err = run(capsys, "render", str(ROOT / "examples" / "qwen3-8b-h100.yaml"))
    assert rc == 0, err
    docs = [d for d in yaml.safe_load_all(out) if d]
    kinds = [d["kind"] for d in docs]
    assert kinds.count("StatefulSet") == 1, kinds
    assert kinds.count("Service") == 2, kinds
    assert kinds.count("Job") == 1, kinds
    assert kinds.count("PersistentVolumeClaim") == 1, kinds
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    assert sts["metadata"]["name"] == "qwen3-8b"
    assert sts["metadata"]["namespace"] == "default"
    c = sts["spec"]["template"]["spec"]["containers"][0]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "Qwen/Qwen3-8B" in c["args"]
    job = next(d for d in docs if d["kind"] == "Job")
    pvc = next(d for d in docs if d["kind"] == "PersistentVolumeClaim")
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in job["spec"]["template"]["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert pvc["metadata"]["name"] in claims  # the bake Job fills that PVC


def test_render_namespace_flag(capsys):
    rc, out, _ = run(capsys, "render", str(ROOT / "examples" / "qwen3-8b-h100.yaml"), "-n", "serving")
    assert rc == 0
    assert {d["metadata"]["namespace"] for d in yaml.safe_load_all(out) if d} == {"serving"}


def test_render_skip_bake_shows_no_serving_pods_before_the_bake(capsys):
    rc, out, _ = run(capsys, "render", str(ROOT / "examples" / "qwen3-8b-h100.yaml"), "--skip-bake")
    assert rc == 0
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(out) if d)
    assert "StatefulSet" not in kinds and "Job" not in kinds


def test_render_invalid_spec_is_a_usage_error(tmp_path, capsys):
    f = tmp_path / "big.yaml"
    f.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "qwenops.dev/v1alpha1",
                "kind": "QwenDeployment",
                "metadata": {"name": "big"},
                "spec": {
                    "model": {"name": "Qwen/Qwen2.5-72B-Instruct"},
                    "gpu": {"product": "NVIDIA-H100-80GB-HBM3"},
                    "serving": {"maxModelLen": 32768},
                },
            }
        )
    )
    assert_usage_error(*run(capsys, "render", str(f)), "big", "DoesNotFit")
