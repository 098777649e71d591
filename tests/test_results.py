"""Profiles, results files, statistics and the report's computed claims."""

import json
import math
import multiprocessing
import time

import numpy as np
import pytest
from scipy import stats as st

from kdutils import results
from kdutils.analysis import report, stats
from kdutils.profiles import ALPHAS, PROFILES, alpha_slug, config_key, get_profile


def test_profiles_are_complete_and_budgets_end_at_epochs():
    assert set(PROFILES) == {"smoke", "default", "full"}
    default = get_profile("default")
    assert default.alphas == ALPHAS and len(ALPHAS) == 11 and ALPHAS[-1] == 1.0
    assert len(default.seeds) >= 3 and len(get_profile("full").seeds) >= 5
    full = get_profile("full")  # the report's stated setting
    assert full.train_size == 10_000 and full.noise_rate == 0.05
    assert full.budgets == (100, 300, 500, 1000)
    with pytest.raises(ValueError, match="budgets"):
        default.replace(epochs=7)
    with pytest.raises(ValueError, match="unknown profile='big'"):
        get_profile("big")


def test_override_ignores_none_and_cuts_budgets():
    p = get_profile("default")
    assert p.override(temperature=None, seeds=None) == p
    short = p.override(epochs=2, seeds=[0])
    assert short.budgets == (1, 2) and short.seeds == (0,)


def test_run_config_depends_on_everything_that_changes_a_run():
    p = get_profile("default")
    base = p.run_config(0.5, 0)
    assert base == p.run_config(0.5, 0)
    assert json.loads(json.dumps(base)) == base  # survives a JSON round trip exactly
    for changed in (
        p.run_config(0.6, 0),
        p.run_config(0.5, 1),
        p.replace(temperature=4.0).run_config(0.5, 0),
        p.replace(noise_rate=0.1).run_config(0.5, 0),
        p.replace(teacher_epochs=9).run_config(0.5, 0),  # through the teacher's key
    ):
        assert changed != base
    assert config_key(base) == config_key(dict(reversed(list(base.items()))))


@pytest.mark.parametrize(
    ("alpha", "slug"),
    [(0.0, "alpha_0p0"), (0.5, "alpha_0p5"), (1, "alpha_1p0"), (0.25, "alpha_0p25")],
)
def test_alpha_slug_is_a_docname_without_dots(alpha, slug):
    assert alpha_slug(alpha) == slug


def test_atomic_write_leaves_no_partial_file(tmp_path):
    path = tmp_path / "r.json"
    results.write_json(path, {"a": 1})

    class Boom(Exception):
        pass

    def explode(f):
        f.write(b'{"half": ')
        raise Boom

    with pytest.raises(Boom):
        results._atomic(path, explode)
    assert results.read_json(path) == {"a": 1}  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary left
    (tmp_path / "bad.json").write_text('{"trunc')
    with pytest.warns(results.CacheWarning, match="bad.json: not valid JSON"):
        assert results.read_json(tmp_path / "bad.json") is None


def _hold_lock(path: str, log: str, seconds: float) -> None:
    with results.exclusive(path):
        with open(log, "a") as f:
            f.write("enter\n")
        time.sleep(seconds)
        with open(log, "a") as f:
            f.write("leave\n")


def test_exclusive_lets_one_process_in_at_a_time(tmp_path):
    """Two sweeps side by side both append to the session log: the second waits."""
    log = tmp_path / "log.txt"
    context = multiprocessing.get_context("spawn")
    args = (str(tmp_path / "sweep.json"), str(log), 0.5)
    procs = [context.Process(target=_hold_lock, args=args) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(600)  # spawned processes import TensorFlow: slow on a loaded machine
        assert p.exitcode == 0
    assert log.read_text().split() == ["enter", "leave", "enter", "leave"]
    assert (tmp_path / "sweep.json.lock").exists()


def test_mean_ci_matches_scipy_t_interval():
    x = [0.91, 0.93, 0.92, 0.95]
    s = stats.mean_ci(x)
    low, high = st.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=st.sem(x))
    assert s["low"] == pytest.approx(low) and s["high"] == pytest.approx(high)
    assert (
        stats.format_ci(s)
        == f"{100 * np.mean(x):.2f}% ± {100 * (high - low) / 2:.2f} (95% CI, n=4)"
    )
    single = stats.mean_ci([0.5])
    assert math.isnan(single["half_width"]) and "no CI" in stats.format_ci(single)
    with pytest.raises(ValueError):
        stats.mean_ci([])


def test_bounded_intervals_are_cut_to_their_bounds_and_keep_their_coverage():
    recall = [1.0, 1.0, 0.9]  # a class most seeds get all right: the t-interval passes 100%
    free, cut = stats.mean_ci(recall), stats.mean_ci(recall, bounds=stats.RATE)
    assert free["high"] > 1.0 and cut["high"] == 1.0 and cut["low"] == free["low"]
    assert cut["half_width"] == free["half_width"] and stats.is_cut(cut)
    assert not stats.is_cut(free) and not stats.is_cut(
        stats.mean_ci([0.5, 0.6, 0.55], bounds=(0, 1))
    )
    low, high = 100 * cut["low"], 100 * cut["mean"]
    assert stats.format_ci(cut) == f"{high:.2f}% [{low:.2f}, 100.00] (95% CI, n=3)"
    bars = stats.error_bar([cut, stats.mean_ci([0.4])])  # one seed: no bar
    assert bars[:, 0] == pytest.approx([cut["mean"] - cut["low"], 1.0 - cut["mean"]])
    assert bars[:, 1].tolist() == [0.0, 0.0]
    correlation = stats.mean_ci([0.99, 0.98, 0.7], bounds=stats.CORRELATION)
    assert correlation["low"] >= -1.0 and correlation["high"] == 1.0
    # The true mean lies in the bounds, so cutting never drops it: equal coverage.
    rng = np.random.default_rng(0)
    draws = np.clip(rng.normal(0.97, 0.03, size=(2000, 4)), 0, 1)
    truth = np.clip(rng.normal(0.97, 0.03, size=2_000_000), 0, 1).mean()
    hits = [
        [
            s["low"] <= truth <= s["high"]
            for s in (stats.mean_ci(d), stats.mean_ci(d, bounds=(0, 1)))
        ]
        for d in draws
    ]
    assert np.all(np.diff(np.array(hits), axis=1) == 0)


def test_paired_difference():
    d = stats.paired_difference([0.9, 0.8, 0.85], [0.8, 0.7, 0.76])
    assert d["mean"] == pytest.approx(0.0966666, rel=1e-5)
    assert d["p_value"] == pytest.approx(st.ttest_rel([0.9, 0.8, 0.85], [0.8, 0.7, 0.76]).pvalue)
    with pytest.raises(ValueError, match="same shape"):
        stats.paired_difference([1, 2], [1])


def fake_records(curve, seeds=(0, 1, 2), budgets=(2, 5), noise=0.0005):
    """Records with test accuracy curve(alpha, epochs) + seed noise, in the stored format."""
    rng = np.random.default_rng(0)
    records = []
    for alpha in ALPHAS:
        for seed in seeds:
            scores = []
            for epochs in budgets:
                acc = curve(alpha, epochs) + rng.normal(0, noise)
                scores.append(
                    {
                        "epochs": epochs,
                        "val_accuracy": curve(alpha, epochs) + rng.normal(0, noise),
                        "test_accuracy": acc,
                        "test_fidelity": 0.9,
                    }
                )
            records.append(
                {
                    "config": {"alpha": alpha, "seed": seed},
                    "budgets": scores,
                    "test_accuracy": scores[-1]["test_accuracy"],
                }
            )
    return records


def test_claims_are_decided_by_paired_tests_with_holm_and_tost():
    # A curve that rises from alpha=0, peaks at 0.5 and drops after 0.8, spreading with budget.
    def curve(alpha, epochs):
        return 0.8 + 0.08 * epochs * (0.25 - (alpha - 0.5) ** 2)

    seeds = tuple(range(5))
    claims = report.claims(fake_records(curve, seeds=seeds))
    outcomes = {k: c["outcome"] for k, c in claims.items()}
    assert outcomes == {
        "drop_after_0p8": "holds",
        "no_initial_rise": "does not hold",  # alpha = 0.1 beats alpha = 0
        "peak_at_0p5": "holds",
        "diverge_with_budget": "holds",
        "distillation_helps": "holds",  # the alpha chosen on validation beats alpha = 1
    }
    assert all(c["p_holm"] >= c["p_value"] for c in claims.values())
    # A flat curve: every difference is within the 0.3-point margin, and TOST says so.
    flat = report.claims(fake_records(lambda a, e: 0.9, seeds=seeds))
    assert {c["outcome"] for c in flat.values()} == {"equivalent"}
    # Seed noise far above the margin: nothing can be decided, and the detectable
    # difference (80% power) that the book states beside "inconclusive" is large.
    noisy = report.claims(fake_records(lambda a, e: 0.9, seeds=seeds, noise=0.02))
    for c in noisy.values():
        assert c["outcome"] == "inconclusive" and c["detectable"] > report.DELTA
    table = report.claims_table(claims)
    assert list(table.index) == list(report.CLAIM_NAMES.values())
    assert "drop_after_0p8" not in table.to_string()


def test_statistics_of_the_verdicts_match_independent_formulas():
    a, b = np.array([0.91, 0.92, 0.905, 0.915, 0.93]), np.array([0.9, 0.915, 0.9, 0.91, 0.92])
    d, n = a - b, 5
    se = d.std(ddof=1) / np.sqrt(n)
    lower = 1 - st.t.cdf((d.mean() + 0.003) / se, n - 1)
    upper = st.t.cdf((d.mean() - 0.003) / se, n - 1)
    assert stats.tost(a, b, 0.003) == pytest.approx(max(lower, upper))
    np.testing.assert_allclose(stats.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    assert np.isnan(stats.holm([0.01, np.nan])[1]) and stats.holm([0.01, np.nan])[0] == 0.01
    # Power of the paired t-test at the detectable difference, by simulation: 80%.
    effect = stats.detectable_difference(1.0, n)
    rng = np.random.default_rng(0)
    draws = rng.normal(effect, 1.0, (20_000, n))
    t = draws.mean(1) / (draws.std(1, ddof=1) / np.sqrt(n))
    assert np.mean(np.abs(t) > st.t.ppf(0.975, n - 1)) == pytest.approx(0.8, abs=0.01)
    for pairs in (2, 100, 1000):  # scipy's noncentral t returns NaN deep in its tails
        assert 0 < stats.detectable_difference(1.0, pairs) < 20
    low, high = stats.wilson(0, 10)
    assert low == 0.0 and 0.25 < high < 0.31
    assert -1 < stats.fisher_ci(0.999, 5)[0] < stats.fisher_ci(0.999, 5)[1] < 1


def test_headline_and_comparison_table():
    records = fake_records(lambda a, e: 0.9 + 0.05 * a)
    teacher = {"test_accuracy": 0.978}
    h = report.headline(records, teacher, n_test=10_000)
    assert h["best_alpha"] == "1" and h["n_seeds"] == "3" and h["n_runs"] == "33"
    low, high = stats.wilson(9_780, 10_000)
    assert h["teacher_test"] == f"97.80% [{100 * low:.2f}%, {100 * high:.2f}%]"
    assert report.headline(records, teacher)["teacher_test"] == "97.80%"
    table = report.comparison_table(records, teacher)
    assert table.loc[0, "report printed"] == "98.80%" and table.loc[1, "report printed"] == "93.10%"
    assert "1 − CategoricalAccuracy" in table.loc[1, "what the report's number is"]


def test_kl_to_reference_matches_a_direct_float64_sum():
    from kdutils.distill.metrics import kl_to_reference

    rng = np.random.default_rng(0)
    student, teacher = rng.normal(0, 3, (50, 10)), rng.normal(0, 3, (50, 10))
    p = np.exp(teacher) / np.exp(teacher).sum(-1, keepdims=True)
    q = np.exp(student) / np.exp(student).sum(-1, keepdims=True)
    expected = np.mean(np.sum(p * np.log(p / q), axis=-1))
    assert kl_to_reference(student, teacher) == pytest.approx(expected, rel=1e-10)
    assert kl_to_reference(teacher, teacher) == pytest.approx(0.0, abs=1e-12)
    assert np.isfinite(kl_to_reference(student * 1e4, teacher * 1e4))
