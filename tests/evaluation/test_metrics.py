"""l2h.evaluation.metrics against scikit-learn and hand-computed values (the accuracy numbers of every report).

The stratified estimator's expected values below are worked by hand from Olofsson et al. (2014) eq. 2-4 and
Cochran's ratio variance (the variance of the residuals d = y - R x within each stratum), not from the code.
"""

import warnings

import numpy as np
import pytest

from l2h.evaluation.metrics import bootstrap_scores, confusion_matrix, scores, stratified_estimates

# stratum a (area 60): two points, one right; stratum b (area 40): three points, two right; stratum c
# (area 100) has no point
REF = np.array([1, 1, 0, 1, 1])
PRED = np.array([1, 0, 0, 1, 0])
STRATA = np.array(["a", "a", "b", "b", "b"])
AREAS = {"a": 60.0, "c": 100.0, "b": 40.0}


def test_stratified_oa_and_its_standard_error_by_hand():
    est = stratified_estimates(REF, PRED, 2, STRATA, AREAS)
    # weights over the strata with points: 0.6, 0.4; OA = 0.6 * 1/2 + 0.4 * 2/3
    oa, se = est["oa"]
    assert oa == pytest.approx(0.3 + 0.4 * 2 / 3)
    # var = 0.6² · s²_a / 2 + 0.4² · s²_b / 3 with s²_a = 1/2, s²_b = 1/3 (ddof 1)
    assert se == pytest.approx(np.sqrt(0.36 * 0.5 / 2 + 0.16 * (1 / 3) / 3))
    assert est["strata_without_points"] == ["c"]
    assert est["area"] == pytest.approx(100.0)


def test_stratified_producers_accuracy_is_a_ratio_with_cochran_variance():
    est = stratified_estimates(REF, PRED, 2, STRATA, AREAS)
    # class 1: y = right and reference 1 (a: 1, 0; b: 0, 1, 0); x = reference 1 (a: 1, 1; b: 0, 1, 1)
    x_hat = 0.6 * 1 + 0.4 * 2 / 3
    r = (0.6 * 0.5 + 0.4 * 1 / 3) / x_hat  # 0.5
    assert est["producers"][1, 0] == pytest.approx(r) == pytest.approx(0.5)
    # residuals d = y - 0.5 x: a: 0.5, -0.5 (s² = 0.5); b: 0, 0.5, -0.5 (s² = 0.25)
    var = (0.36 * 0.5 / 2 + 0.16 * 0.25 / 3) / x_hat**2
    assert est["producers"][1, 1] == pytest.approx(np.sqrt(var))
    # class 0 is never in stratum a's reference and always right in b: producer's accuracy 1, no error
    assert est["producers"][0].tolist() == pytest.approx([1.0, 0.0], abs=1e-6)
    # user's accuracy of class 1: predicted 1 at a's first and b's second point, both right
    assert est["users"][1].tolist() == pytest.approx([1.0, 0.0])
    # area share of class 1: 0.6 · 1 + 0.4 · 2/3
    assert est["area_share"][1, 0] == pytest.approx(x_hat)


def test_a_stratum_of_one_point_adds_no_variance():
    ref, pred = np.array([1, 1, 0, 1]), np.array([1, 0, 1, 1])
    strata = np.array(["a", "a", "b", "c"])  # b and c hold one point each
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a variance of one value (ddof 1) would warn and give NaN
        est = stratified_estimates(ref, pred, 2, strata, {"a": 50, "b": 25, "c": 25})
    oa, se = est["oa"]
    assert oa == pytest.approx(0.5 * 0.5 + 0.25 * 0 + 0.25 * 1)
    assert se == pytest.approx(np.sqrt(0.25 * 0.5 / 2))  # only stratum a varies


def test_a_map_right_everywhere_has_accuracy_one_and_absent_classes_nan():
    ref = pred = np.array([0, 0, 0, 0])
    est = stratified_estimates(ref, pred, 2, np.array([1, 1, 2, 2]), {1: 3.0, 2: 1.0})
    assert est["oa"] == pytest.approx((1.0, 0.0))
    assert est["users"][0].tolist() == pytest.approx([1.0, 0.0])
    assert est["producers"][0].tolist() == pytest.approx([1.0, 0.0], abs=1e-6)
    assert np.isnan(est["users"][1]).all() and np.isnan(est["producers"][1]).all()
    assert est["area_share"].ravel().tolist() == pytest.approx([1.0, 0.0, 0.0, 0.0])
    assert est["strata_without_points"] == []


def test_scores_of_a_stack_are_the_scores_of_each_matrix():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(11)
    refs = rng.integers(0, 4, (3, 200))
    preds = np.where(rng.random((3, 200)) < 0.6, refs, rng.integers(0, 4, (3, 200)))
    stack = np.stack([confusion_matrix(r, p, 4) for r, p in zip(refs, preds)])
    s = scores(stack)
    assert s["oa"].shape == (3,) and s["iou"].shape == (3, 4)
    for i, (r, p) in enumerate(zip(refs, preds)):
        assert stack[i].tolist() == sk.confusion_matrix(r, p, labels=range(4)).tolist()
        assert s["kappa"][i] == pytest.approx(sk.cohen_kappa_score(r, p))
        assert s["iou"][i] == pytest.approx(sk.jaccard_score(r, p, labels=range(4), average=None))
        assert s["miou"][i] == pytest.approx(sk.jaccard_score(r, p, average="macro"))


def test_bootstrap_without_iterations_is_nan_of_the_scores_shapes():
    out = bootstrap_scores([0, 1, 1], [0, 1, 0], 3, 0, seed=1)
    assert out["oa"].shape == (2,) and out["iou"].shape == (3, 2) and np.isnan(out["oa"]).all()
    assert set(out) == {"oa", "kappa", "miou", "producers", "users", "f1", "iou"}
