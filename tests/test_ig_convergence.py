"""The adaptive IG stopping rule: scores, not completeness alone; a floor; caps that say so."""

from __future__ import annotations

import numpy as np

from smugir.attribution import ABSOLUTE_FLOOR, START_STEPS, integrated_gradients


class Kinks:
    """f(h) = scale * sum c_i relu(h_i - t_i): gradients jump at alpha = t_i, exact IG is known."""

    name = "kinks"

    def __init__(self, n: int = 400, scale: float = 1.0, seed: int = 0):
        rng = np.random.default_rng(seed)
        # pairs of equal weight jumping a quarter into and three quarters into one of the first grid's
        # intervals: each score is off by c/64 on that grid, the sum is exact (completeness met)
        c, cell = rng.normal(size=n // 2), rng.integers(0, START_STEPS, n // 2)
        self.c, self.t = np.r_[c, c], np.r_[cell + 0.25, cell + 0.75] / START_STEPS
        self.scale = scale

    def __call__(self, points, class_index):
        p = np.asarray(points, dtype=np.float64).reshape(len(points), -1)
        return self.scale * (np.maximum(p - self.t, 0) * self.c).sum(1), self.scale * (p > self.t) * self.c

    def exact(self):
        return self.scale * self.c * (1 - self.t)


def test_completeness_met_early_still_refines_until_the_scores_hold():
    provider = Kinks()
    coarse = integrated_gradients(provider, np.ones(400), 0, steps=START_STEPS)
    assert coarse.completeness_error < 0.01 and not coarse.converged  # fixed 16 steps: complete, scores off
    result = integrated_gradients(provider, np.ones(400), 0, time_limit=None)
    error = np.linalg.norm(result.scores - provider.exact()) / np.linalg.norm(provider.exact())
    assert result.converged and result.stop == "converged" and result.steps > START_STEPS
    assert error < 0.02, error


def test_near_zero_change_stops_at_the_floor():
    provider = Kinks(scale=1e-7)
    result = integrated_gradients(provider, np.ones(400), 0, time_limit=None)
    assert result.steps == START_STEPS and result.converged and result.stop == "floor"
    assert abs(result.f_h - result.f_0) < ABSOLUTE_FLOOR
    assert "absolute floor" in result.describe()


def test_time_cap_is_reported_as_not_converged():
    result = integrated_gradients(Kinks(), np.ones(400), 0, time_limit=0.0)
    assert not result.converged and result.stop == "time cap" and result.steps == 2  # the coarsest first grid
    assert result.describe().startswith("IG not converged (time cap")
    assert result.to_json()["converged"] is False


class Slow(Kinks):
    """Kinks at 0.1 s per gradient call: a model too slow for its time limit."""

    def __call__(self, points, class_index):
        import time

        time.sleep(0.1)
        return super().__call__(points, class_index)


def test_a_slow_model_stops_on_a_coarser_first_grid_near_the_time_limit():
    import time

    clock = time.perf_counter()
    result = integrated_gradients(Slow(), np.ones(400), 0, time_limit=0.15)
    seconds = time.perf_counter() - clock
    assert result.stop == "time cap" and not result.converged
    assert result.steps in (2, 4, 8) and seconds < 0.15 + 0.1 + 0.05  # one call past the limit at most
    exact = Kinks().exact()
    assert np.linalg.norm(result.scores - exact) < np.linalg.norm(exact)  # scores of a coarse uniform grid, not garbage


class Paced(Kinks):
    """Kinks at 0.04 s per gradient evaluation, never converging in time: each score is a pair of
    jumps that only fine grids resolve."""

    def __call__(self, points, class_index):
        import time

        time.sleep(0.04 * len(points))
        return super().__call__(points, class_index)


def test_no_batch_is_started_that_would_end_past_the_time_limit():
    """The first grid (17 points) takes 0.68 s, each round of 8 points 0.32 s: with 1.5 s, two
    rounds fit and a third, which would end at 1.64 s, is not started."""
    import time

    clock = time.perf_counter()
    result = integrated_gradients(Paced(), np.ones(400), 0, time_limit=1.5)
    seconds = time.perf_counter() - clock
    assert result.stop == "time cap" and seconds <= 1.5, seconds
    assert result.steps == START_STEPS + 16  # two rounds of REFINE points


def test_explanation_says_when_ig_did_not_converge(monkeypatch):
    from conftest import REAL_MODELS

    import smugir.attribution as attribution
    from smugir.explain import explain

    monkeypatch.setattr(attribution, "TIME_LIMIT", 0.0)
    monkeypatch.setattr(attribution.first_layer_attribution, "__defaults__", (None, "probability", "auto", None, 0.0, None))
    path, samples = REAL_MODELS["mnist-net_256x2"]
    result = explain(path, samples()[0], timeout=10)
    assert not result.ig_converged and result.to_json()["ig_converged"] is False
    assert "IG not converged" in result.summary()


def test_progress_reports_points_and_a_shrinking_eta():
    seen = []
    result = integrated_gradients(Kinks(), np.ones(400), 0, time_limit=None, on_progress=seen.append)
    assert seen and seen[-1].points == result.steps + 1
    assert [p.points for p in seen] == sorted(p.points for p in seen)
    assert seen[0].eta is not None and seen[0].eta > 0 and seen[-1].eta == 0.0  # the last check meets the rule
    assert "gradient points" in seen[-1].describe()
    fixed = []
    integrated_gradients(Kinks(), np.ones(400), 0, steps=100, on_progress=fixed.append)
    assert fixed[-1].points == 101 and fixed[-1].eta == 0.0


def test_progress_eta_is_capped_by_the_time_limit():
    seen = []
    integrated_gradients(Kinks(), np.ones(400), 0, time_limit=0.0, on_progress=seen.append)
    assert seen and all(p.eta == 0.0 for p in seen)


def test_progress_line_shows_points_and_time_left_on_a_terminal():
    import io
    import time

    from rich.console import Console

    from smugir.attribution import IGProgress
    from smugir.live import describe_ig, live_line

    screen = io.StringIO()
    with live_line("Integrated Gradients", Console(file=screen, force_terminal=True, width=120), describe_ig) as on_progress:
        on_progress(IGProgress(24, 3.0, 12.4, 0.031, 0.004))
        time.sleep(1.6)
    shown = screen.getvalue()
    assert "Integrated Gradients" in shown and "24 gradient points" in shown and "score error 3.1 %" in shown and "about 12 s left" in shown


class _SqrtModel:
    """f(h) = sum sqrt(h): its gradient is infinite at the baseline h = 0 and finite everywhere else,
    an integrable spike like a zero-bias LayerNorm network's; IG of neuron i is sqrt(h_i) exactly."""

    name = "sqrt"

    def __call__(self, points, class_index):
        points = np.asarray(points, dtype=np.float64)
        with np.errstate(divide="ignore"):
            return np.sqrt(points).sum(axis=tuple(range(1, points.ndim))), 0.5 / np.sqrt(points)


def test_a_gradient_that_is_infinite_at_the_baseline_is_integrated_from_just_after_it():
    h = np.linspace(0.5, 2.0, 12)
    result = integrated_gradients(_SqrtModel(), h, 0, time_limit=None)
    assert np.all(np.isfinite(result.scores)) and 0 < result.start <= 2.0 ** -4
    np.testing.assert_allclose(result.scores, np.sqrt(h), rtol=0.03)
    assert result.completeness_error < 0.03 and result.f_0 == 0.0
    assert "the gradient at the baseline is not finite" in result.describe()
