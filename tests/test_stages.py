"""The one stage cache: a stage whose inputs or config changed is redone, never silently reused."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from rrtf_lite import stages
from rrtf_lite.config import RunConfig, load_config

PACKAGE = Path(__file__).resolve().parent.parent / "rrtf_lite"
STAGE_MODULES = {"evolve": "evol", "sample": "sampling", "rank": "ranking", "train": "train", "evaluate": "evaluate"}
RUN_LEVEL = {
    "profile",
    "run_dir",
    "ablation",
}  # where a run lives, and the ablation's own settings: no stage reads them


def _config_sections_read(module: str) -> set[str]:
    """Every ``config.<section>`` (or ``self.config.<section>``) a stage module reads, found in its source."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    sections = {f for f in RunConfig.__dataclass_fields__}
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in sections:
            owner = node.value
            name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
            if name == "config":
                found.add(node.attr)
    return found - RUN_LEVEL


@pytest.mark.parametrize("stage", list(STAGE_MODULES))
def test_every_config_section_a_stage_reads_is_in_its_fingerprint(stage):
    read = _config_sections_read(STAGE_MODULES[stage])
    assert read, stage
    missing = read - set(stages.SPECS[stage].sections)
    assert not missing, f"{stage} reads config.{sorted(missing)} but its cache does not fingerprint them"


def test_evolve_is_redone_when_the_sampling_batch_size_changes(tmp_path):
    """evolve batches its attempts (and their seeds) by sampling.batch_size: a new value must not reuse old outputs."""
    from rrtf_lite.evol import evolve

    config = load_config("tiny", overrides={"evol.rounds": 0, "run_dir": str(tmp_path)})
    assert evolve(config, tmp_path)["skipped"] is False
    assert evolve(config, tmp_path)["skipped"] is True
    changed = load_config("tiny", overrides={"evol.rounds": 0, "run_dir": str(tmp_path), "sampling.batch_size": 3})
    assert evolve(changed, tmp_path)["skipped"] is False


@pytest.mark.parametrize("stage", ["evolve", "sample", "rank", "train"])
def test_changing_any_section_of_a_stage_changes_its_fingerprint(stage, tmp_path):
    config = load_config("tiny")
    before = stages.stage_fingerprint(stage, config, tmp_path)
    for section in stages.SPECS[stage].sections:
        changed = load_config("tiny")
        if section == "seed":
            changed.seed += 1
        else:
            part = getattr(changed, section)
            name, value = next(iter(vars(part).items()))
            setattr(part, name, f"{value}-changed")
        assert stages.stage_fingerprint(stage, changed, tmp_path) != before, section
