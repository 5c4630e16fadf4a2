"""The package's layers as a contract: who may import whom (every import counts, also those inside functions).

cli.py, exercises.py, colab.py           entry points and notebook helpers
ablation.py                              the ablation, above the runner
ablation_report.py                       its results (below it: no circle)
pipeline.py                              the runner: imports the stages
evol sampling ranking train evaluate     the stages: no arrows between them
everything else                          shared pieces (stages.py, config, records, ...), acyclic
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "rrtf_lite"
LAYERS = [
    {"cli", "exercises", "colab"},
    {"ablation"},
    {"ablation_report"},
    {"pipeline"},
    {"evol", "sampling", "ranking", "train", "evaluate"},
]
STAGES = LAYERS[-1]


def _modules() -> list[str]:
    return sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def _layer(module: str) -> int:
    return next((i for i, layer in enumerate(LAYERS) if module in layer), len(LAYERS))  # unlisted: shared


def _imports(module: str) -> set[str]:
    """The package modules ``module`` imports, at the top or inside a function."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from .records import x / from . import x
                base = node.module or ""
                names = [base] if base else [a.name for a in node.names]
                names = [f"rrtf_lite.{n}" for n in names]
            elif node.module == "rrtf_lite":
                names = [f"rrtf_lite.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            if name.startswith("rrtf_lite."):
                target = name.split(".")[1]
                if target != module and (PACKAGE / f"{target}.py").is_file():
                    found.add(target)
    return found


GRAPH = {m: _imports(m) for m in _modules()}


def test_no_module_imports_one_above_it():
    wrong = [f"{m} imports {t}" for m, targets in GRAPH.items() for t in sorted(targets) if _layer(t) < _layer(m)]
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_no_stage_imports_another_stage_or_the_runner():
    wrong = [f"{m} imports {t}" for m in sorted(STAGES) for t in sorted(GRAPH[m] & (STAGES | {"pipeline"}))]
    assert not wrong, "\n".join(wrong)


def test_the_runner_imports_every_stage_directly():
    assert STAGES <= GRAPH["pipeline"]


def test_no_import_cycle():
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(GRAPH.get(module, ())):
            if state.get(target) == 1:
                cycle = path[path.index(target) :] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in GRAPH:
        if module not in state:
            visit(module, [module])


def test_the_stage_cache_and_the_hasher_live_in_one_place():
    """open/finish, the fingerprint and hashlib appear in stages.py only (seed derivation aside)."""
    for module in _modules():
        source = (PACKAGE / f"{module}.py").read_text(encoding="utf-8")
        if module in ("stages",):
            continue
        assert "def open_stage" not in source and "def finish_stage" not in source, module
        assert "class Marker" not in source and "def fingerprint" not in source, module


def test_one_atomic_writer():
    """Whole files are replaced in one place (records.write_atomic); nothing else renames temp files over results."""
    for module in _modules():
        if module in ("records", "models"):  # models: the GGUF cache renames a finished folder into place
            continue
        source = (PACKAGE / f"{module}.py").read_text(encoding="utf-8")
        assert "os.replace(" not in source and ".tmp" not in source and "mkstemp" not in source, module
