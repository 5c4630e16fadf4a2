from pathlib import Path

import pytest

from rrtf_lite.config import PROFILES, RunConfig, load_config, save_config
from rrtf_lite.errors import UserError


@pytest.mark.parametrize("profile", list(PROFILES))
def test_every_profile_loads_with_its_own_run_dir(profile):
    config = load_config(profile)
    assert isinstance(config, RunConfig)
    assert config.profile == profile
    assert config.run_dir == f"runs/{profile}"


def test_profiles_differ_only_by_their_overrides():
    tiny, cpu = load_config("tiny"), load_config("cpu")
    assert tiny.model.student == "tiny-random"
    assert cpu.model.student == "smollm2-135m-instruct"
    assert tiny.rank == cpu.rank  # not overridden by tiny: the one default applies
    assert load_config("colab-t4").train.finetune == "qlora"


def test_overrides_are_typed():
    config = load_config("tiny", overrides=["train.max_steps=10", "eval.ks=[1, 5]", "train.learning_rate=1"])
    assert load_config("tiny", overrides=["train.learning_rate=1e-2"]).train.learning_rate == 0.01
    assert config.train.max_steps == 10
    assert config.eval.ks == [1, 5]
    assert config.train.learning_rate == 1.0 and isinstance(config.train.learning_rate, float)
    assert load_config("tiny", overrides={"eval.humaneval_limit": None}).eval.humaneval_limit is None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lr=1", "unknown config key 'train.lr'"),
        ("train.max_steps=abc", "train.max_steps must be int"),
        ("train.learning_rate=fast", "train.learning_rate must be float"),
        ("train.gradient_checkpointing=3", "must be bool"),
        ("train=3", "is a section"),
        ("max_steps", "must look like section.key=value"),
    ],
)
def test_bad_overrides_say_what_is_wrong(override, message):
    with pytest.raises(UserError, match=message):
        load_config("tiny", overrides=[override])


def test_unknown_profile_suggests_the_nearest():
    with pytest.raises(UserError, match="did you mean 'cpu'"):
        load_config("cpux")


def test_yaml_file_sets_profile_and_values(tmp_path: Path):
    path = tmp_path / "run.yaml"
    path.write_text("profile: tiny\ntrain:\n  max_steps: 7\nsampling:\n  teacher:\n    kind: openai\n")
    config = load_config(path=path)
    assert config.profile == "tiny" and config.model.student == "tiny-random"
    assert config.train.max_steps == 7 and config.sampling.teacher.kind == "openai"


def test_yaml_errors_name_the_file_and_key(tmp_path: Path):
    bad_key = tmp_path / "bad_key.yaml"
    bad_key.write_text("train:\n  max_stepz: 7\n")
    with pytest.raises(UserError, match=r"bad_key.yaml: unknown config key 'train.max_stepz' \(did you mean"):
        load_config(path=bad_key)
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [1,\n")
    with pytest.raises(UserError, match="broken.yaml is not valid YAML"):
        load_config(path=broken)
    with pytest.raises(UserError, match="does not exist"):
        load_config(path=tmp_path / "missing.yaml")
    not_utf8 = tmp_path / "latin1.yaml"
    not_utf8.write_bytes("train:\n  mode: caf\xe9\n".encode("latin-1"))
    with pytest.raises(UserError, match="latin1.yaml is unreadable"):
        load_config(path=not_utf8)


def test_saved_config_loads_back_identically(tmp_path: Path):
    config = load_config("tiny", overrides=["train.max_steps=3"])
    save_config(config, tmp_path / "config.yaml")
    assert load_config(path=tmp_path / "config.yaml") == config
