"""The pair score (mct/associate/score.py): each term a log-likelihood ratio, fitted on the
scene itself; and the self-training loop of mct/associate/__init__.py."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mct.associate import associate, associate_table
from mct.associate.clustering import constrained_agglomerative, conflicts_within
from mct.associate.config import AssociationConfig, ScenarioTopology, TopologyFile, Transition
from mct.associate.links import CameraLinks, LinkArrays
from mct.associate.score import (
    AppearanceModel,
    ColocationModel,
    DirectionModel,
    LinkTable,
    PairModel,
    pair_log_lr,
    score_pairs,
)
from mct.associate.table import TrackletTable
from mct.config import ConfigError, validate
from mct.types import Camera, Tracklet

# ground (x, y) metres -> pixels: u = 10 x + 100, v = 10 y + 50 (10 px per metre)
H_METRES = np.array([[10.0, 0, 100], [0, 10.0, 50], [0, 0, 1]])
KEYS = [("S01", "c001"), ("S01", "c002")]


def unit(*values: float, dim: int = 4) -> np.ndarray:
    v = np.zeros(dim, np.float32)
    v[: len(values)] = values
    return v / np.linalg.norm(v)


def no_links(table: TrackletTable) -> LinkTable:
    return LinkTable.from_arrays(CameraLinks(links={}, camera_keys=table.camera_keys).compile(table))


def model(table: TrackletTable, appearance: AppearanceModel | None = None, links: LinkTable | None = None,
          handover_s: float = 0.0, terms: tuple[bool, ...] = (True, True, True, True)) -> PairModel:
    """Appearance: different vehicles near cosine 0.2, one vehicle near 0.9, even prior."""
    app = appearance or AppearanceModel(0.2, 0.2, 1.5, 0.3, 0.5, "labels")
    return PairModel(app, DirectionModel(), ColocationModel(), links or no_links(table), np.array(terms), handover_s)


# ---------------------------------------------------------------------------- appearance
def test_appearance_calibration_from_known_negatives_recovers_a_known_mixture():
    # different vehicles: z = atanh(cos) ~ N(0.3, 0.15); one vehicle: N(1.2, 0.2)
    rng = np.random.default_rng(0)
    negatives = np.tanh(rng.normal(0.3, 0.15, 3000))  # e.g. two tracklets of one camera seen at once
    same = np.tanh(rng.normal(1.2, 0.2, 600))
    different = np.tanh(rng.normal(0.3, 0.15, 1400))
    fitted = AppearanceModel.fit_scene(negatives, np.concatenate([same, different]))  # 30 % true pairs
    assert fitted.source == "scene"
    assert fitted.pos_mean == pytest.approx(1.2, abs=0.03) and fitted.pos_std == pytest.approx(0.2, abs=0.03)
    assert fitted.prior == pytest.approx(0.3, abs=0.02)
    # the ratio: positive for one vehicle's typical cosine, negative for different vehicles',
    # and it only rises with the cosine (no upturn at low cosine from the two parabolas)
    assert fitted.log_lr(np.tanh(1.2)) > 5 and fitted.log_lr(np.tanh(0.3)) < -3
    grid = np.linspace(-0.99, 0.99, 500)
    assert np.all(np.diff(fitted.log_lr(grid)) >= -1e-9)
    # too few pairs to fit: the generic calibration, said so
    tiny = AppearanceModel.fit_scene(negatives[:5], same[:5])
    assert tiny.source == "generic" and 0.4 < tiny.even_cosine() < 0.6


def test_appearance_from_labels_needs_pairs_of_both_kinds():
    with pytest.raises(ValueError, match="at least 5 pairs of each kind, got 2 same and 10 different"):
        AppearanceModel.fit_labelled(np.array([0.9, 0.8]), np.zeros(10), prior=0.1)


# ---------------------------------------------------------------------------- travel time
def test_the_kernel_gap_term_is_the_links_gap_log_lr():
    # the clustering loop scores pairs in compiled code: its travel-time term must equal the
    # links' own gap_log_lr (window, soft edges, horizon, outlier floor, hard bound)
    shape = (1, 2, 2)
    arrays = LinkArrays(
        lo=np.array([[[0.0, 20.0], [-5.0, 0.0]]]), hi=np.array([[[10.0, 40.0], [5.0, 10.0]]]),
        spread_s=np.array([[[1.0, 4.0], [2.0, 1.0]]]), min_gap_s=np.array([[[-np.inf, 8.0], [-np.inf, -np.inf]]]),
        overlap=np.zeros(shape, bool), known=np.ones(shape, bool), source=np.ones(shape, np.int8), horizon_s=np.array([300.0]),
    )
    gaps = np.array([-4.0, 5.0, 9.0, 19.0, 30.0, 45.0, 60.0, 200.0])  # c002 always starts after c001
    starts_b = 100.0 + gaps  # c001 tracklet 90-100 s, c002 tracklet at 100 + gap
    t = TrackletTable.from_arrays(KEYS, np.r_[0, np.ones(len(gaps), int)], np.arange(len(gaps) + 1),
                                  np.r_[90.0, starts_b], np.r_[100.0, starts_b + 5], np.tile(unit(1), (len(gaps) + 1, 1)))
    m = model(t, links=LinkTable.from_arrays(arrays), terms=(False, True, False, False))
    got = pair_log_lr(t, m, np.zeros(len(gaps), int), np.arange(1, len(gaps) + 1))
    want = arrays.gap_log_lr(np.zeros(len(gaps), int), np.zeros(len(gaps), int), np.ones(len(gaps), int), gaps)
    assert np.isneginf(got[:2]).all() and np.isneginf(want[:2]).all()  # faster than any vehicle
    assert got[2:] == pytest.approx(np.clip(want[2:], -20, 20), abs=1e-9)
    assert got[4] > 0 > got[7]  # inside the window vs far beyond it


@pytest.mark.parametrize("dim", [1, 4, 7, 130])
def test_the_kernel_appearance_term_is_the_models_log_lr_for_any_feature_size(dim: int):
    # the compiled cosine sums the feature dimensions on four independent sums plus a tail:
    # every dimension counts, whatever the size
    rng = np.random.default_rng(dim)
    f = rng.normal(size=(6, dim)).astype(np.float32)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    t = TrackletTable.from_arrays(KEYS, [0, 1, 0, 1, 0, 1], np.arange(6), np.arange(6) * 100.0, np.arange(6) * 100.0 + 5, f)
    m = model(t, terms=(True, False, False, False))
    a, b = np.array([0, 0, 1, 2, 3]), np.array([1, 3, 2, 5, 4])
    cos = np.einsum("ij,ij->i", f[a].astype(np.float64), f[b].astype(np.float64))
    assert pair_log_lr(t, m, a, b) == pytest.approx(m.appearance.log_lr(cos), abs=1e-5)


def test_direction_of_views_seen_at_once_compares_headings_entry_first_then_exit():
    # motion rows: entry xy, exit xy (metres), entry heading, exit heading (0: unknown)
    motion = np.zeros((4, 4, 2))
    motion[0] = [[0, 0], [20, 0], [1, 0], [1, 0]]  # c001, heading east
    motion[1] = [[0, 1], [20, 1], [1, 0], [0, -1]]  # c002 at once, entering east
    motion[2] = [[0, 1], [20, 1], [-1, 0], [-1, 0]]  # c002 at once, heading west
    motion[3] = [[0, 1], [20, 1], [0, 0], [0, 1]]  # c002 at once, entry heading unknown, exit north
    t = TrackletTable.from_arrays(KEYS, [0, 1, 1, 1], [1, 2, 3, 4], [0.0, 1.0, 1.0, 1.0], [10.0] * 4,
                                  np.tile(unit(1), (4, 1)), motion=motion)
    d = DirectionModel(kappa=3.0)
    m = replace(model(t, terms=(False, False, True, False)), direction=d)
    same, opposite, exit_only = pair_log_lr(t, m, np.zeros(3, int), np.array([1, 2, 3]))
    assert same == pytest.approx(3.0 - d.log_i0)  # entry headings agree (exit headings not asked)
    assert opposite == pytest.approx(-3.0 - d.log_i0)
    assert exit_only == pytest.approx(0.0 - d.log_i0)  # no entry heading: exit east against north


def test_a_look_alike_pair_is_told_apart_by_travel_time_alone():
    # two look-alike cars (identical features) leave c001 at 0-5 s and 20-25 s; the link
    # c001 -> c002 takes 25-35 s; c002 sees them at 35 s and 55 s
    topo = TopologyFile(scenarios={"S01": ScenarioTopology(transitions=[Transition(src="c001", dst="c002", min_gap_s=25, max_gap_s=35)])})
    cams = [Camera("S01", "c001"), Camera("S01", "c002")]
    # features: every c001 view is as alike to every c002 view (cosine 0.5, a little above
    # even odds for this appearance calibration)
    feats = np.stack([unit(1, 0, 0, 0), unit(0, 1, 0, 0), unit(0.5, 0.5, 0.5**0.5, 0), unit(0.5, 0.5, 0.5**0.5, 0)])
    t = TrackletTable.from_arrays(KEYS, [0, 0, 1, 1], [1, 2, 3, 4], [0.0, 20.0, 35.0, 55.0], [5.0, 25.0, 40.0, 60.0], feats)
    links = LinkTable.from_arrays(CameraLinks.from_topology(topo, cams).compile(t))
    app = AppearanceModel(0.0, 0.3, 0.8, 0.3, 0.5, "labels")
    m = model(t, app, links=links)
    assert app.log_lr(np.array([0.5]))[0] == pytest.approx(1.32, abs=0.01)
    # every cross pair looks the same; only the gap differs: 30 s (in) or 10 s / 50 s (out)
    a, b = np.array([0, 0, 1, 1]), np.array([2, 3, 2, 3])
    scores = score_pairs(t, m, a, b)
    assert scores[0] > scores[1] and scores[3] > scores[2]
    labels = constrained_agglomerative(t, m, a, b, scores, 0.0, 10)
    assert labels.tolist() == [0, 1, 0, 1]
    # without the travel-time term the first pair met decides, wrongly for one of them
    off = model(t, app, links=links, terms=(True, False, True, True))
    labels_off = constrained_agglomerative(t, off, a[[1, 2, 0, 3]], b[[1, 2, 0, 3]], score_pairs(t, off, a[[1, 2, 0, 3]], b[[1, 2, 0, 3]]), 0.0, 10)
    assert labels_off.tolist() != [0, 1, 0, 1]


# ---------------------------------------------------------------------------- co-location
def drive(cid: str, tid: int, foot_xy_px: list[tuple[float, float]], feature: np.ndarray, first_frame: int = 1) -> Tracklet:
    foot = np.asarray(foot_xy_px, np.float32)
    xyxy = np.c_[foot[:, 0] - 10, foot[:, 1] - 10, foot[:, 0] + 10, foot[:, 1]].astype(np.float32)
    n = len(foot)
    return Tracklet("S01", cid, tid, np.arange(first_frame, first_frame + n), xyxy, np.ones(n, np.float32), feature=feature)


def test_a_vehicle_parked_in_two_overlapping_views_is_one_by_colocation():
    # c001 and c002 look at one car park (same ground, 10 px per metre). Frames 1-600 (60 s):
    # car P stands at (5, 5) m; c002 puts its ground point 2 m off (another edge of the car).
    # Car Q, a look-alike (same model, same colour), stands 30 m away, also in both views.
    cams = [Camera("S01", c, fps=10.0, frame_size=(1000, 600), homography=H_METRES) for c in ("c001", "c002")]
    look = unit(1, 0.05)
    p1 = drive("c001", 1, [(150, 100)] * 600, look)
    p2 = drive("c002", 1, [(170, 100)] * 600, unit(1, 0.06))
    q1 = drive("c001", 2, [(450, 100)] * 600, unit(1, 0.04))
    q2 = drive("c002", 2, [(470, 100)] * 600, unit(1, 0.07))
    result = associate([p1, q1, p2, q2], cams, AssociationConfig())
    gid = {(c, t): result.global_id("S01", c, t) for c, t in (("c001", 1), ("c002", 1), ("c001", 2), ("c002", 2))}
    assert gid[("c001", 1)] == gid[("c002", 1)]  # 2 m apart while seen together: one car
    assert gid[("c001", 2)] == gid[("c002", 2)]
    assert gid[("c001", 1)] != gid[("c001", 2)]  # one camera, at once: two cars
    # the co-location term: +log(R^2 / 2 sigma^2) near 0 m, strongly negative at 30 m
    coloc = ColocationModel(sigma_m=4.0, radius_m=50.0)
    assert coloc.log_lr(np.array([2.0]))[0] > 3 and coloc.log_lr(np.array([30.0]))[0] < -20 + 1e-9
    assert coloc.log_lr(np.array([np.nan]))[0] == 0.0  # not seen together: no evidence
    assert ColocationModel().fit(np.full(50, 2.0)).sigma_m < 4.0  # learns a tighter scale


# ---------------------------------------------------------------------------- direction
def test_direction_term_rewards_driving_on_and_penalises_driving_back():
    # motion rows: entry xy, exit xy (metres), entry heading, exit heading
    motion = np.zeros((3, 4, 2))
    motion[0] = [[0, 0], [50, 0], [1, 0], [1, 0]]  # a: drives east, leaves at x = 50
    motion[1] = [[100, 0], [150, 0], [1, 0], [1, 0]]  # b: enters 50 m further east, heading east
    motion[2] = [[-100, 0], [-150, 0], [-1, 0], [-1, 0]]  # c: enters 150 m behind a, heading west
    t = TrackletTable.from_arrays(KEYS, [0, 1, 1], [1, 2, 3], [0.0, 20.0, 20.0], [5.0, 25.0, 25.0], np.tile(unit(1), (3, 1)), motion=motion)
    d = DirectionModel(kappa=2.0)
    m = model(t, terms=(False, False, True, False))
    m = replace(m, direction=d)
    on, back = pair_log_lr(t, m, np.array([0, 0]), np.array([1, 2]))
    assert on == pytest.approx(2 * (2.0 - d.log_i0))  # both headings along the step
    # c: the step from a's exit points west, against a's heading; c's heading points west, along it
    assert back == pytest.approx((-2.0 - d.log_i0) + (2.0 - d.log_i0))
    assert DirectionModel().fit(np.full(100, 0.95)).kappa > 5  # learns a tight concentration


# ---------------------------------------------------------------------------- hard rules
def test_handover_fragment_in_one_camera_and_cannot_links():
    # c001: fragment 1 at 0-10 s, fragment 2 at 9.5-20 s (the tracker restarted on the car,
    # sharing 0.5 s); car 3 is in c001 at 5-15 s and looks like both
    car = unit(1, 0.1)
    t = TrackletTable.from_arrays(KEYS, [0, 0, 0], [1, 2, 3], [0.0, 9.5, 5.0], [10.0, 20.0, 15.0], np.tile(car, (3, 1)))
    a, b = np.array([0, 0, 1]), np.array([1, 2, 2])
    strict = model(t, handover_s=0.0)
    loose = model(t, handover_s=1.0)
    assert np.isneginf(pair_log_lr(t, strict, a, b)).all()  # all three overlap in time: cannot-links
    s_loose = pair_log_lr(t, loose, a, b)
    assert np.isfinite(s_loose[0]) and np.isneginf(s_loose[1:]).all()  # a handover of 0.5 s <= 1 s
    labels = constrained_agglomerative(t, loose, a, b, s_loose, 0.0, 10)
    assert labels.tolist() == [0, 0, 1] and conflicts_within(t, loose, labels) == 0
    # other scenarios never meet
    two = TrackletTable.from_arrays([("S01", "c001"), ("S02", "c001")], [0, 1], [1, 1], [0.0, 50.0], [5.0, 55.0], np.tile(car, (2, 1)))
    assert np.isneginf(pair_log_lr(two, model(two), np.array([0]), np.array([1]))).all()


# ---------------------------------------------------------------------------- self-training
def city(n_vehicles: int = 120, seed: int = 0) -> tuple[TrackletTable, np.ndarray]:
    """Vehicles drive c001 -> c002 -> c003, 28-32 s per hop; re-ID-like features."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_vehicles, 32))
    cams, starts, feats, truth = [], [], [], []
    for v in range(n_vehicles):
        t0 = rng.uniform(0, 1500)
        for c in range(3):
            cams.append(c)
            starts.append(t0 + c * (rng.uniform(28, 32) + 8))  # 8 s in view, then 28-32 s of road
            f = centres[v] + 0.9 * rng.normal(size=32)
            feats.append(f / np.linalg.norm(f))
            truth.append(v)
    keys = [("S01", f"c00{i}") for i in (1, 2, 3)]
    s = np.array(starts)
    table = TrackletTable.from_arrays(keys, np.array(cams), np.arange(len(cams)), s, s + 8, np.array(feats, np.float32))
    return table, np.array(truth)


def pair_f1(labels: np.ndarray, truth: np.ndarray) -> float:
    same_pred = labels[:, None] == labels[None]
    same_true = truth[:, None] == truth[None]
    iu = np.triu_indices(len(labels), 1)
    tp = (same_pred & same_true)[iu].sum()
    return 2 * tp / (same_pred[iu].sum() + same_true[iu].sum())


def test_self_training_learns_the_travel_time_and_converges():
    table, truth = city()
    prior = CameraLinks(links={}, camera_keys=table.camera_keys)  # no calibration: nothing known
    details: dict = {}
    labels = associate_table(table, AssociationConfig(self_training_rounds=5), prior, details=details, progress=False)
    rounds = details["rounds"]
    assert len(rounds) < 6 and rounds[-1]["changed"] == 0  # stopped because nothing changed
    # the learned link c001 -> c002 holds the true 28-32 s
    link = details["links"].link("S01", "c001", "c002")
    assert link is not None and link.lo_s <= 28.5 and 31.5 <= link.hi_s <= 45
    # and it helps: better than the first pass with nothing known of the cameras
    first = associate_table(table, AssociationConfig(self_training_rounds=0), prior, progress=False)
    assert pair_f1(labels, truth) > pair_f1(first, truth) + 0.02
    assert pair_f1(labels, truth) > 0.9


# ---------------------------------------------------------------------------- config
def test_removed_keys_name_what_replaced_them():
    with pytest.raises(ConfigError, match=r"association.all_pairs_link was removed .*average linkage"):
        validate({"association": {"all_pairs_link": True}}, source="old.yaml")
    with pytest.raises(ValueError, match=r"association.min_similarity was removed .*min_log_lr"):
        AssociationConfig(min_similarity=0.5)
    with pytest.raises(ValueError, match=r"association.pca_dim was removed .*index.pca_dim"):
        AssociationConfig(pca_dim=64)
    with pytest.raises(ValueError, match=r"association.index is a section now: write index: \{kind: hnsw\}"):
        AssociationConfig(index="hnsw")
    with pytest.raises(ValueError, match="terms"):
        AssociationConfig(terms=("appearance", "smell"))
    # the association section has at most 15 keys (the index section not counted)
    assert len(set(AssociationConfig.model_fields) - {"index"}) <= 15


def test_the_search_plan_is_freed_before_the_clustering(monkeypatch: pytest.MonkeyPatch):
    # the kNN plan's row lists (0.32 GB at 1M tracklets) were held to the end of the
    # association, under the clustering's peak
    import gc
    import weakref

    import mct.associate.clustering as clustering
    import mct.associate.constraints as constraints

    plan: list[weakref.ref] = []
    alive: list[int] = []
    search_blocks, cluster = constraints.search_blocks, clustering.constrained_agglomerative

    def planned(*args, **kwargs):
        blocks = search_blocks(*args, **kwargs)
        plan.extend(weakref.ref(rows) for block in blocks for rows in block)
        return blocks

    def clustered(*args, **kwargs):
        gc.collect()
        alive.append(sum(r() is not None for r in plan))
        return cluster(*args, **kwargs)

    monkeypatch.setattr(constraints, "search_blocks", planned)
    monkeypatch.setattr(clustering, "constrained_agglomerative", clustered)
    table, _ = city(40)
    associate_table(table, AssociationConfig(self_training_rounds=1), progress=False)
    assert plan and alive and max(alive) == 0


def test_empty_table():
    t = TrackletTable.from_arrays(KEYS, np.zeros(0, int), np.zeros(0, int), np.zeros(0), np.zeros(0), np.zeros((0, 4), np.float32))
    assert associate_table(t, AssociationConfig(), progress=False).tolist() == []


def test_cosines_in_chunks_on_threads_are_the_cosines():
    from mct.associate.score import pair_cosines

    rng = np.random.default_rng(0)
    f = rng.normal(size=(50, 16)).astype(np.float32)
    a, b = rng.integers(0, 50, 1000), rng.integers(0, 50, 1000)
    want = np.einsum("ij,ij->i", f[a], f[b])
    np.testing.assert_array_equal(pair_cosines(f, a, b, chunk=7), want)
    np.testing.assert_array_equal(pair_cosines(f, a, b), want)
