from pathlib import Path

import pytest

from mct.config import Config, ConfigError, dump_config, load_config, validate

import yaml


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_defaults_are_the_reference_values():
    cfg = load_config()
    assert isinstance(cfg, Config)
    assert cfg.tracker.max_age == 30 and cfg.tracker.n_init == 3 and cfg.tracker.max_cosine_distance == 0.2


def test_mistyped_key_names_file_key_and_suggestion(tmp_path):
    p = _write(tmp_path, "demo.yaml", "tracker:\n  max_agee: 50\n")
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert str(err.value) == f"{p}: tracker.max_agee: unknown key (did you mean max_age?)"


def test_wrong_type_and_out_of_range_name_the_key_and_value(tmp_path):
    p = _write(tmp_path, "bad.yaml", "tracker:\n  max_age: many\n  max_iou_distance: 1.5\n")
    with pytest.raises(ConfigError) as err:
        load_config(p)
    msg = str(err.value)
    assert f"{p}: tracker.max_age:" in msg and "'many'" in msg
    assert f"{p}: tracker.max_iou_distance:" in msg and "1.5" in msg


def test_unknown_top_level_section(tmp_path):
    p = _write(tmp_path, "bad.yaml", "trackr:\n  max_age: 5\n")
    with pytest.raises(ConfigError, match=r"trackr: unknown key \(did you mean tracker\?\)"):
        load_config(p)


def test_extends_merges_and_overrides_apply_last(tmp_path):
    _write(tmp_path, "base.yaml", "seed: 3\ntracker:\n  max_age: 40\n  n_init: 2\n")
    child = _write(tmp_path, "child.yaml", "extends: base.yaml\ntracker:\n  max_age: 50\n")
    cfg = load_config(child)
    assert cfg.seed == 3 and cfg.tracker.max_age == 50 and cfg.tracker.n_init == 2
    cfg = load_config(child, ["tracker.max_age=60", "detector.soft_nms.method=linear"])
    assert cfg.tracker.max_age == 60 and cfg.detector.soft_nms.method == "linear"


def test_override_errors_name_the_override():
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(None, ["tracker.max_age"])
    with pytest.raises(ConfigError, match=r"tracker\.max_agee: unknown key"):
        load_config(None, ["tracker.max_agee=3"])


def test_extends_cycle_and_missing_file(tmp_path):
    _write(tmp_path, "a.yaml", "extends: b.yaml\n")
    _write(tmp_path, "b.yaml", "extends: a.yaml\n")
    with pytest.raises(ConfigError, match="extends cycle"):
        load_config(tmp_path / "a.yaml")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = _write(tmp_path, "list.yaml", "- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        load_config(bad)


def test_resolved_config_round_trips_through_yaml():
    cfg = load_config(None, ["tracker.max_age=45"])
    again = validate(yaml.safe_load(dump_config(cfg)))
    assert again == cfg


CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_every_shipped_pipeline_config_validates():
    files = list(CONFIGS.glob("*.yaml")) + list((CONFIGS / "experiments").glob("*.yaml"))
    assert len(files) >= 3, "shipped configs missing"
    for p in files:
        load_config(p)


# configs/reid/ holds both training configs (read by `mct train-reid` as ReidTrainConfig)
# and label-free adaptation configs, named adapt_*.yaml (read by `mct adapt` as
# ReidAdaptConfig); each file is validated against the model its command reads it with.
@pytest.mark.parametrize(
    "folder, pattern, exclude, module, model",
    [
        ("synth", "*.yaml", None, "mct.data.synth.config", "SynthConfig"),
        ("reid", "*.yaml", "adapt_*.yaml", "mct.reid.config", "ReidTrainConfig"),
        ("reid", "adapt_*.yaml", None, "mct.reid.config", "ReidAdaptConfig"),
        ("detector", "*.yaml", None, "mct.detect.config", "DetectorTrainConfig"),
    ],
)
def test_every_shipped_training_and_synth_config_validates(folder, pattern, exclude, module, model):
    import importlib

    cls = getattr(importlib.import_module(module), model)
    files = sorted(p for p in (CONFIGS / folder).glob(pattern) if not (exclude and p.match(exclude)))
    assert files, f"no {pattern} configs in configs/{folder}"
    for p in files:
        load_config(p, model=cls)
