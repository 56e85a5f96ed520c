"""Sweep expansion and the comparison table."""

from __future__ import annotations

import pytest

from mct.config import ConfigError, load_config
from mct.run.sweep import comparison_markdown, expand_sweep


def _cfg(tmp_path, text):
    p = tmp_path / "sweep.yaml"
    p.write_text(text)
    return load_config(p)


def test_grid_is_a_cartesian_product_plus_named_variants_plus_base(tmp_path):
    cfg = _cfg(tmp_path, """
name: exp
sweep:
  grid:
    tracker.max_age: [10, 20]
    association.k: [3, 5]
  variants:
    no reid: {reid.enabled: false}
""")
    variants = expand_sweep(cfg)
    names = [v.name for v in variants]
    assert names == [
        "base",
        "tracker.max_age=10,association.k=3",
        "tracker.max_age=10,association.k=5",
        "tracker.max_age=20,association.k=3",
        "tracker.max_age=20,association.k=5",
        "no_reid",
    ]
    by_name = {v.name: v.config for v in variants}
    assert by_name["base"].tracker.max_age == 30
    assert by_name["tracker.max_age=20,association.k=3"].tracker.max_age == 20
    assert by_name["tracker.max_age=20,association.k=3"].association.k == 3
    assert by_name["no_reid"].reid.enabled is False
    assert all(v.config.sweep is None for v in variants)
    assert by_name["no_reid"].name == "exp/no_reid"


def test_without_base_and_bad_keys_name_the_variant(tmp_path):
    cfg = _cfg(tmp_path, "sweep:\n  include_base: false\n  grid:\n    seed: [1]\n")
    assert [v.name for v in expand_sweep(cfg)] == ["seed=1"]
    cfg = _cfg(tmp_path, "sweep:\n  variants:\n    typo: {tracker.max_agee: 3}\n")
    with pytest.raises(ConfigError, match=r"sweep variant 'typo'.*tracker\.max_agee: unknown key \(did you mean max_age\?\)"):
        expand_sweep(cfg)
    cfg = _cfg(tmp_path, "sweep:\n  grid:\n    tracker.max_age: [many]\n")
    with pytest.raises(ConfigError, match=r"tracker\.max_age"):
        expand_sweep(cfg)


def test_comparison_markdown_rows():
    rows = [
        {"variant": "base", "overrides": {}, "status": "ok", "idf1": 0.5, "idp": 0.6, "idr": None, "seconds": 3.25,
         "camera_stages_computed": 9, "camera_stages_cached": 0},
        {"variant": "k=3", "overrides": {"association.k": 3}, "status": "failed", "idf1": None, "idp": None,
         "idr": None, "seconds": 1.0, "camera_stages_computed": 0, "camera_stages_cached": 9},
    ]
    md = comparison_markdown(rows).splitlines()
    assert md[0].startswith("| variant | overrides | IDF1 | IDP | IDR | time (s)")
    assert md[2] == "| base | (base) | 50.00 | 60.00 | — | 3.2 | 9 / 0 | ok |"
    assert md[3] == "| k=3 | `association.k=3` | — | — | — | 1.0 | 0 / 9 | failed |"
