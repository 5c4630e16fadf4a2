"""docs/architecture.md names every module of the package (a new module without a line there fails here)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_every_module_is_in_the_architecture_doc():
    doc = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    modules = sorted(p.name for p in (REPO / "rrtf_lite").glob("*.py") if p.name != "__init__.py")
    missing = [m for m in modules if f"| `{m}` |" not in doc]
    assert not missing, f"docs/architecture.md has no row for {missing}: add one to its module table"
