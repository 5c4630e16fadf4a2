"""Keep each notebooks/NN_name.ipynb and its paired notebooks/NN_name.py (jupytext percent format) in step.

    python tools/build_notebooks.py           # bring every pair in step (`make notebooks`)
    python tools/build_notebooks.py --check   # exit 1 if a pair disagrees (tests run this); writes nothing

The .py is the text you review, diff and lint; notebooks/jupytext.toml pairs it with the .ipynb, so JupyterLab
(with jupytext installed) saves both on every save. For each pair this script
1. picks the source: the .py, unless the .ipynb is newer *and* holds different cells (an edit made where
   jupytext was not running, e.g. on Colab); a file without its partner is the source of both;
2. normalises it: the shared install and profile cells and the Colab badge are (re)written from this file
   (INSTALL_CELL, PROFILE_CELL; the repository from GITHUB_REPO in make_notebook_index.py), and are inserted
   when missing; outputs, execution counts and cell metadata other than tags and ``jupyter.source_hidden`` (a collapsed
   reference solution) are dropped; cell ids become
   NN-000, NN-001, ...; notebook metadata is the kernel plus ``rrtf_lite.summary`` from the .py header;
3. writes both files from the normalised notebook, so rebuilding is byte-identical.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import jupytext
import nbformat
from jupytext.config import load_jupytext_configuration_file

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_notebook_index as index  # noqa: E402

KERNEL = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
TEXT_FORMAT = "py:percent"
BADGE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")

# The shared first code cells of every notebook; each is recognised by its first line.
INSTALL_CELL = f"""\
# Install cell. On Colab: clone rrtf-lite and install it with the project's pins (torch and numpy untouched).
# Locally: nothing to do when rrtf_lite already imports (`make setup`).
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("rrtf_lite") is None:
    if not os.path.isdir("rrtf-lite"):
        subprocess.run(["git", "clone", "--depth", "1", "{index.REPO_URL}", "rrtf-lite"], check=True)
    sys.path.insert(0, os.path.abspath("rrtf-lite"))
from rrtf_lite.colab import ensure_installed

ensure_installed("rrtf-lite" if os.path.isdir("rrtf-lite") else None)"""

PROFILE_CELL = """\
# The profile: RRTF_PROFILE if set (CI sets "tiny"), else colab-t4 on a GPU and cpu without one.
import os

import pandas as pd
import torch
from IPython.display import HTML, Markdown, display  # noqa: F401 (for the cells below)

from rrtf_lite.config import load_config
from rrtf_lite.pipeline import run_stage  # noqa: F401 (for the cells below)

PROFILE = os.environ.get("RRTF_PROFILE") or ("colab-t4" if torch.cuda.is_available() else "cpu")
RUN_DIR = f"runs/nb-{PROFILE}"  # shared by the notebooks; the command line uses runs/<profile>
config = load_config(PROFILE, overrides={"run_dir": RUN_DIR})
pd.set_option("display.max_colwidth", 80)
print(f"profile {PROFILE}: student {config.model.student}, run dir {RUN_DIR}")"""


def first_line(text: str) -> str:
    return text.split("\n", 1)[0]


def set_shared_cells(cells: list) -> list:
    """Rewrite the install and profile cells from the constants above; insert them after the title if missing."""
    cells = list(cells)
    at = 1  # where a missing shared cell goes: after the title cell, install before profile
    for shared in (INSTALL_CELL, PROFILE_CELL):
        found = [i for i, c in enumerate(cells) if c.cell_type == "code" and c.source.startswith(first_line(shared))]
        if found:
            cells[found[0]] = nbformat.v4.new_code_cell(shared, metadata=cells[found[0]].metadata)
            at = found[0] + 1
        else:
            cells.insert(at, nbformat.v4.new_code_cell(shared))
            at += 1
    return cells


def set_badge(markdown: str, filename: str) -> str:
    """The title cell's Colab badge points at this notebook; a title cell without one gets it under the title."""
    badge = index.colab_badge(filename)
    if BADGE.search(markdown):
        return BADGE.sub(lambda _: badge, markdown, count=1)
    title, _, rest = markdown.partition("\n")
    return f"{title}\n\n{badge}\n\n{rest.lstrip(chr(10))}".rstrip("\n")


def normalise(nb: nbformat.NotebookNode, filename: str) -> nbformat.NotebookNode:
    """The notebook as committed: shared cells and badge from here, no outputs, stable ids, minimal metadata."""
    summary = nb.metadata.get("rrtf_lite", {}).get("summary", "")
    if not summary:
        raise SystemExit(f"{filename}: add a one-line `rrtf_lite: summary:` to the .py header (the README table)")
    out = nbformat.v4.new_notebook()
    out.metadata = {"kernelspec": KERNEL, "language_info": {"name": "python"}, "rrtf_lite": {"summary": summary}}
    for i, cell in enumerate(set_shared_cells(nb.cells)):
        source = set_badge(cell.source, filename) if i == 0 and cell.cell_type == "markdown" else cell.source
        new = {"markdown": nbformat.v4.new_markdown_cell, "code": nbformat.v4.new_code_cell}.get(
            cell.cell_type, nbformat.v4.new_raw_cell
        )(source)
        new.id = f"{filename[:2]}-{i:03d}"
        if cell.metadata.get("tags"):
            new.metadata["tags"] = list(cell.metadata["tags"])
        if cell.metadata.get("jupyter", {}).get("source_hidden"):
            new.metadata["jupyter"] = {"source_hidden": True}  # a collapsed reference solution
        out.cells.append(new)
    nbformat.validate(out)
    return out


def cells_of(nb: nbformat.NotebookNode) -> list[tuple]:
    return [(c.cell_type, c.source, c.metadata.get("tags", []), c.metadata.get("jupyter", {})) for c in nb.cells]


def read_pair(ipynb: Path, script: Path, config) -> tuple[nbformat.NotebookNode, str]:
    """The notebook to build from, and which file it came from (step 1 in the module docstring)."""
    from_script = jupytext.read(script, fmt=TEXT_FORMAT, config=config) if script.is_file() else None
    from_ipynb = nbformat.read(ipynb, as_version=4) if ipynb.is_file() else None
    if from_script is None:
        return from_ipynb, ipynb.name
    if from_ipynb is None or cells_of(from_ipynb) == cells_of(from_script):
        return from_script, script.name
    if ipynb.stat().st_mtime > script.stat().st_mtime:
        return from_ipynb, ipynb.name
    return from_script, script.name


def pairs(folder: Path) -> list[tuple[Path, Path]]:
    """(NN_name.ipynb, NN_name.py) for every notebook or notebook source in ``folder``."""
    stems = {p.stem for p in folder.glob("*.ipynb")} | {p.stem for p in folder.glob("*.py")}
    stems = {s for s in stems if index.NAME.match(f"{s}.ipynb")}
    return [(folder / f"{s}.ipynb", folder / f"{s}.py") for s in sorted(stems)]


def sync(folder: Path = index.NOTEBOOKS, check: bool = False) -> list[str]:
    """Bring every pair in ``folder`` in step; with ``check``, write nothing. Returns the files that were stale."""
    config = load_jupytext_configuration_file(str(folder / "jupytext.toml"))
    stale = []
    for ipynb, script in pairs(folder):
        nb, source = read_pair(ipynb, script, config)
        nb = normalise(nb, ipynb.name)
        wanted = {ipynb: nbformat.writes(nb) + "\n", script: jupytext.writes(nb, fmt=TEXT_FORMAT, config=config)}
        for path, text in wanted.items():
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(f"{path.name} (from {source})")
                if not check:
                    path.write_text(text, encoding="utf-8")
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if a pair is out of step")
    parser.add_argument("--dir", type=Path, default=index.NOTEBOOKS, help="the notebooks folder")
    args = parser.parse_args(argv)
    stale = sync(args.dir, check=args.check)
    for item in stale:
        print(f"{'out of step, run `make notebooks`' if args.check else 'wrote'}: {item}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
