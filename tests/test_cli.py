"""The command line: one clear line for user errors, and ``doctor`` working offline on CPU."""

import subprocess
import sys

import pytest

from rrtf_lite import cli


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rrtf_lite.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def test_help_lists_every_stage():
    result = _run("--help")
    assert result.returncode == 0
    for stage in ("evolve", "sample", "rank", "train", "evaluate", "run", "doctor"):
        assert stage in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["config", "--profile", "tiny", "--set", "train.lr=1"], "unknown config key 'train.lr'"),
        (["config", "--profile", "cpux"], "Unknown profile 'cpux'"),
        (["config", "--config", "no-such-file.yaml"], "no-such-file.yaml does not exist"),
        (["doctor", "--model", "not-an-alias"], "Unknown model 'not-an-alias'"),
    ],
)
def test_user_errors_are_one_line_without_traceback(args, message):
    result = _run(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("rrtf-lite: error:")]
    assert len(lines) == 1 and message in lines[0]


def test_config_prints_the_resolved_yaml(capsys):
    assert cli.main(["config", "--profile", "tiny", "--set", "train.max_steps=9", "--run-dir", "x/y"]) == 0
    out = capsys.readouterr().out
    assert "student: tiny-random" in out and "max_steps: 9" in out and "run_dir: x/y" in out


def test_doctor_loads_the_bundled_model_and_generates_offline():
    result = _run("doctor")
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "device        cpu" in out
    assert "smollm2-135m-instruct: loaded in" in out and "tokens in" in out
    completion = out.split("completion", 1)[1]
    assert completion.strip(), "doctor should show a real completion"
