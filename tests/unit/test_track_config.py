"""Tracker and tracklet config: reference defaults, seconds-based max_age, validation."""

import pytest

from mct.config import ConfigError, load_config
from mct.track.config import CHI2_95_4DOF, TrackerConfig, TrackletConfig


def test_defaults_are_the_reference_values():
    cfg = TrackerConfig()
    assert (cfg.max_cosine_distance, cfg.nn_budget, cfg.max_iou_distance, cfg.max_age, cfg.n_init) == (
        0.2, 100, 0.7, 30, 3,
    )
    assert cfg.gating_threshold == CHI2_95_4DOF == 9.4877
    assert cfg.std_weight_position == 1 / 20 and cfg.std_weight_velocity == 1 / 160
    # the options beyond the reference are off
    assert cfg.mode == "deep_sort" and cfg.motion_weight == 0.0 and cfg.max_age_s is None
    assert cfg.output == "matched"  # ours: the matched detection's box
    t = TrackletConfig()
    assert t.min_length == 1 and t.max_interpolation_gap == 0 and t.expand_scale == 1.0


@pytest.mark.parametrize("max_age_s, fps, frames", [(None, 8.0, 30), (3.0, 10.0, 30), (3.0, 8.0, 24), (0.01, 10.0, 1)])
def test_max_age_in_seconds(max_age_s, fps, frames):
    assert TrackerConfig(max_age_s=max_age_s).max_age_frames(fps) == frames


def test_yaml_keys_and_errors():
    cfg = load_config(None, ["tracker.mode=motion_only", "tracker.max_age_s=2.5", "tracklets.expand_scale=1.2"])
    assert cfg.tracker.mode == "motion_only" and cfg.tracker.max_age_s == 2.5 and cfg.tracklets.expand_scale == 1.2
    with pytest.raises(ConfigError, match="tracker.mode"):
        load_config(None, ["tracker.mode=sort"])
    with pytest.raises(ConfigError, match="tracker.motion_weight"):
        load_config(None, ["tracker.motion_weight=1.5"])
    with pytest.raises(ConfigError, match="tracklets.expand_scale"):
        load_config(None, ["tracklets.expand_scale=0.5"])
    assert load_config(None, ["tracker.output=filtered"]).tracker.output == "filtered"
    with pytest.raises(ConfigError, match="tracker.output"):
        load_config(None, ["tracker.output=kalman"])
