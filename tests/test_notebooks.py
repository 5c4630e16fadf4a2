"""The notebooks: in step with their paired .py sources, stripped of outputs, linked correctly, and executed.

Execution uses nbclient with the ``python3`` kernel (the ipykernel of the interpreter running pytest, i.e. the
venv's), ``RRTF_PROFILE=tiny`` and the rest of this process's environment (``RRTF_CACHE_DIR`` from conftest).
All notebooks run in one temporary copy of notebooks/, in order, so later notebooks reuse the stages that
earlier ones finished (each notebook still runs alone: it runs the stages it needs). Cells tagged
``hub-only`` are removed before execution. Executed copies stay in the temporary folder, never in notebooks/.

Run only these: ``pytest tests/test_notebooks.py``; one notebook: ``pytest tests/test_notebooks.py -k 03``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT = int(os.environ.get("RRTF_NOTEBOOK_CELL_TIMEOUT", "300"))
HUB_ONLY = "hub-only"


def _tool(name: str):
    """Import tools/<name>.py (tools/ is not a package)."""
    sys.path.insert(0, str(REPO / "tools"))
    try:
        spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(REPO / "tools"))


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _markdown(nb: dict) -> list[str]:
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]


def _code(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


# ---------------------------------------------------------------- static checks
def test_notebooks_exist_with_stable_names():
    names = [p.name for p in NOTEBOOKS]
    assert len(names) == 8, names
    assert all(re.match(r"^\d\d_[a-z0-9_]+\.ipynb$", n) for n in names), names
    assert [n[:2] for n in names] == [f"{i:02d}" for i in range(8)]
    missing = [p.with_suffix(".py").name for p in NOTEBOOKS if not p.with_suffix(".py").is_file()]
    assert not missing, f"every notebook has its paired jupytext source: {missing}"


def test_notebooks_match_their_source():
    """Each notebooks/NN_*.ipynb and its paired .py agree, in the form tools/build_notebooks.py writes."""
    assert _tool("build_notebooks").main(["--check"]) == 0, "run: make notebooks"


def _copy_pair(tmp_path: Path, stem: str = "03_ranking") -> Path:
    """A notebooks/ folder in tmp_path holding one notebook, its .py and the jupytext pairing."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for name in (f"{stem}.ipynb", f"{stem}.py", "jupytext.toml"):
        shutil.copy2(NOTEBOOK_DIR / name, folder / name)
    return folder


def test_an_edit_to_the_py_fails_the_check_and_the_build_carries_it_to_the_notebook(tmp_path):
    build = _tool("build_notebooks")
    folder = _copy_pair(tmp_path)
    script = folder / "03_ranking.py"
    script.write_text(script.read_text().replace("# # 03 · Ranking", "# # 03 · Ranking (edited)", 1))
    assert build.main(["--check", "--dir", str(folder)]) == 1
    assert build.main(["--dir", str(folder)]) == 0
    assert "# 03 · Ranking (edited)" in _markdown(_load(folder / "03_ranking.ipynb"))[0]
    assert build.main(["--check", "--dir", str(folder)]) == 0


def test_an_edit_saved_in_the_notebook_alone_reaches_the_py(tmp_path):
    """Saved where jupytext was not running (e.g. Colab): outputs and new ids come along; the newer file wins."""
    build = _tool("build_notebooks")
    folder = _copy_pair(tmp_path)
    path = folder / "03_ranking.ipynb"
    nb = _load(path)
    nb["cells"][0]["source"] = "".join(nb["cells"][0]["source"]).replace("# 03 · Ranking", "# 03 · Ranking (fixed)")
    nb["cells"][1].update(execution_count=1, outputs=[{"output_type": "stream", "name": "stdout", "text": "hi\n"}])
    nb["cells"][2]["id"] = "random-id"
    path.write_text(json.dumps(nb), encoding="utf-8")
    later = (folder / "03_ranking.py").stat().st_mtime + 10
    os.utime(path, (later, later))
    assert build.main(["--check", "--dir", str(folder)]) == 1
    assert build.main(["--dir", str(folder)]) == 0
    assert "# # 03 · Ranking (fixed)" in (folder / "03_ranking.py").read_text(encoding="utf-8")
    assert path.read_text(encoding="utf-8") == (NOTEBOOK_DIR / path.name).read_text(encoding="utf-8").replace(
        "# 03 · Ranking", "# 03 · Ranking (fixed)", 1
    ), "the notebook is rewritten without outputs and with its stable ids"
    assert build.main(["--check", "--dir", str(folder)]) == 0


def test_the_shared_cells_and_the_badge_come_from_the_build_script(tmp_path):
    """A hand edit to the install cell or the Colab badge is put back; a notebook without them gets them."""
    build = _tool("build_notebooks")
    folder = _copy_pair(tmp_path)
    script = folder / "03_ranking.py"
    text = script.read_text(encoding="utf-8").replace("--depth", "--depth-edited", 1)
    script.write_text(text.replace("03_ranking.ipynb)", "another.ipynb)", 1), encoding="utf-8")
    new = folder / "09_new_one.py"
    header = "# ---\n# jupyter:\n#   rrtf_lite:\n#     summary: new\n# ---\n"
    new.write_text(header + "\n# %% [markdown]\n# # 09 · New\n\n# %%\n1\n", encoding="utf-8")
    assert build.main(["--dir", str(folder)]) == 0
    assert script.read_text(encoding="utf-8") == (NOTEBOOK_DIR / "03_ranking.py").read_text(encoding="utf-8")
    cells = _load(folder / "09_new_one.ipynb")["cells"]
    sources = ["".join(c["source"]) for c in cells]
    index = _tool("make_notebook_index")
    assert sources[0] == f"# 09 · New\n\n{index.colab_badge('09_new_one.ipynb')}"
    assert sources[1:] == [build.INSTALL_CELL, build.PROFILE_CELL, "1"]


def test_notebook_tables_are_current():
    """notebooks/README.md and README.md's marked block are what tools/make_notebook_index.py generates."""
    index = _tool("make_notebook_index")
    assert index.main(["--check"]) == 0, "run: python tools/make_notebook_index.py"
    readme = REPO / "README.md"
    if not readme.is_file() or index.START not in readme.read_text(encoding="utf-8"):
        pytest.skip(f"README.md has no {index.START} markers yet (its owner adds them)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    for cell in _code(_load(path)):
        assert cell.get("outputs") == [], f"{path.name}: a code cell has outputs; rebuild with make notebooks"
        assert cell.get("execution_count") is None, f"{path.name}: a code cell has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_structure(path):
    """Objectives and a Colab badge at the top, install + profile cells, an exercise with its check at the end."""
    index = _tool("make_notebook_index")
    nb = _load(path)
    first = _markdown(nb)[0]
    assert index.colab_url(path.name) in first, f"{path.name}: the first cell needs its own Colab badge"
    assert "In this notebook you will" in first, f"{path.name}: the first cell states the learning objectives"
    code = ["".join(c["source"]) for c in _code(nb)]
    assert "ensure_installed(" in code[0] and index.REPO_URL in code[0], "first code cell: the install cell"
    assert 'PROFILE = os.environ.get("RRTF_PROFILE")' in code[1], "second code cell: the profile"
    assert any("Exercise" in m for m in _markdown(nb)), f"{path.name}: no exercise"
    assert re.search(r"check_\w+\(", code[-1]), f"{path.name}: the last code cell checks the exercise"
    for cell in _code(nb):
        if HUB_ONLY in cell.get("metadata", {}).get("tags", []):
            assert "".join(cell["source"]).startswith("# hub-only"), "a hub-only cell says so on its first line"


def _links(text: str) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", text)


def _check_relative_links(text: str, base: Path, where: str) -> None:
    for target in _links(text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        path = (base / target.split("#", 1)[0]).resolve()
        assert path.exists(), f"{where}: broken link {target!r}"


def test_links_resolve():
    """Every relative link in the notebooks' markdown and in both READMEs points at an existing file, and every
    Colab link names an existing notebook."""
    index = _tool("make_notebook_index")
    texts = [
        (p.read_text(encoding="utf-8"), p.parent, p.name) for p in (NOTEBOOK_DIR / "README.md", REPO / "README.md")
    ]
    texts = [t for t in texts if t[1].is_dir()]
    for path in NOTEBOOKS:
        texts += [(m, NOTEBOOK_DIR, path.name) for m in _markdown(_load(path))]
    prefix = f"https://colab.research.google.com/github/{index.GITHUB_REPO}/blob/{index.BRANCH}/"
    for text, base, where in texts:
        _check_relative_links(text, base, where)
        for target in _links(text):
            if target.startswith("https://colab.research.google.com/github/"):
                assert target.startswith(prefix), f"{where}: Colab link not built from GITHUB_REPO: {target}"
                assert (REPO / target.removeprefix(prefix)).is_file(), f"{where}: Colab link to a missing file"
    listed = re.findall(r"\]\((\d\d_[a-z0-9_]+\.ipynb)\)", (NOTEBOOK_DIR / "README.md").read_text(encoding="utf-8"))
    assert sorted(set(listed)) == [p.name for p in NOTEBOOKS]


# ---------------------------------------------------------------- helpers behind the cells
def test_colab_constraints_drop_runtime_packages():
    from rrtf_lite.colab import colab_constraints, install_commands

    text = "# pins\ntorch==2.13.0\nnumpy==2.4.6\nNumPy==1.0\ntorchvision==0.1\ntransformers==5.24.0\npeft==0.21.2\n"
    kept = colab_constraints(text)
    assert "torch" not in kept.replace("# pins", "") and "numpy" not in kept.lower()
    assert "transformers==5.24.0" in kept and "peft==0.21.2" in kept and "# pins" in kept
    real = colab_constraints((REPO / "constraints.txt").read_text())
    assert "torch==" not in real and "numpy==" not in real and "transformers==" in real
    for command in install_commands("/x", "/c.txt"):
        assert "--force-reinstall" not in command and "-U" not in command and "--upgrade" not in command


def test_install_cell_is_a_no_op_locally(capsys, monkeypatch):
    from rrtf_lite.colab import ensure_installed

    for key in [k for k in os.environ if k.startswith("COLAB_")]:
        monkeypatch.delenv(key)
    assert ensure_installed() == "local"
    assert "nothing to install" in capsys.readouterr().out


def _wrong_answers():
    import math

    from rrtf_lite import exercises as ex

    return [
        (ex.check_profile_choices, {"ci": "cpu", "laptop": "cpu", "free_colab": "colab-t4", "gpu_cluster": "full"}),
        (ex.check_refusal_rule, lambda text: "sorry" in text),  # case-sensitive, ignores the length
        (ex.check_temperature_softmax, lambda z, t: [math.exp(v) / sum(math.exp(u) for u in z) for v in z]),
        (ex.check_score_function, lambda level, fraction: float(level)),
        (ex.check_pair_rank_loss, lambda pt, ps, rt, rs: max(0.0, ps - pt)),  # RRHF: not gap-weighted
        (ex.check_pass_at_k, lambda n, c, k: c / n),
        (ex.check_cli_command, "rrtf-lite run --profile colab-t4 --set train.max_steps=10"),
        (ex.check_paired_interval, lambda a, b, r, s: (min(a) - max(b), max(a) - min(b))),  # not a bootstrap
    ]


@pytest.mark.parametrize("check,answer", _wrong_answers(), ids=lambda x: getattr(x, "__name__", "answer"))
def test_exercise_checks_reject_wrong_answers_and_hint_on_none(check, answer, capsys):
    with pytest.raises(AssertionError, match="."):
        check(answer)
    assert check(None) is False
    assert "Hint" in capsys.readouterr().out


# ---------------------------------------------------------------- execution
@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    """One temporary copy of notebooks/ for the session: the notebooks share runs/nb-tiny there."""
    folder = tmp_path_factory.mktemp("notebooks")
    for path in NOTEBOOKS:
        shutil.copy(path, folder / path.name)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, workdir):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(workdir / path.name, as_version=4)
    nb.cells = [c for c in nb.cells if HUB_ONLY not in c.get("metadata", {}).get("tags", [])]
    env = _tool("execute_notebooks").kernel_env("tiny", static=False)  # the live explorer, as a learner sees it
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
        allow_errors=False,
    )
    start = time.perf_counter()
    client.execute(env=env)
    seconds = time.perf_counter() - start
    nbformat.write(nb, workdir / f"{path.stem}.executed.ipynb")
    print(f"{path.name}: {seconds:.1f} s")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    text = "\n".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "✅ Correct!" in text, f"{path.name}: the exercise check did not pass"
