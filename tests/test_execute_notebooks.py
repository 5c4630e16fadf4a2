"""tools/execute_notebooks.py picks notebooks by prefix and indexes the executed copies from their metadata."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("execute_notebooks", REPO / "tools" / "execute_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_selects_by_prefix_in_course_order(tool):
    assert [p.name[:2] for p in tool.notebooks(["03", "01"])] == ["01", "03"]
    assert len(tool.notebooks([])) == len(list((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")))
    with pytest.raises(SystemExit, match="no notebook"):
        tool.notebooks(["99"])


def test_kernel_runs_the_profile_with_the_static_explorer(tool, monkeypatch):
    monkeypatch.setenv("COLAB_RELEASE_TAG", "x")
    env = tool.kernel_env("cpu")
    assert env["RRTF_PROFILE"] == "cpu" and env["RRTF_STATIC"] == "1" and "COLAB_RELEASE_TAG" not in env


def test_index_lists_executed_copies_and_the_missing_ones(tool, tmp_path):
    first = tool.notebooks([])[0]
    nb = nbformat.v4.new_notebook()
    nb.metadata["rrtf_executed"] = {"profile": "cpu", "seconds": 12.5, "finished": "2026-12-01 11:00 UTC"}
    nbformat.write(nb, tmp_path / first.name)
    text = tool.write_index(tmp_path).read_text()
    assert f"| [{first.stem}]({first.name}) | cpu | 12.5 s | 2026-12-01 11:00 UTC |" in text
    assert text.count("not executed yet") == len(tool.notebooks([])) - 1
