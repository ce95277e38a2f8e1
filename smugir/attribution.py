"""Integrated Gradients: which first-layer neurons matter for the label (and input-space IG).

IG of the class output w.r.t. the first-layer post-activations h, baseline 0, trapezoid rule.
The original method fixed 200 uniform steps (`steps=200` still does that, and reports how far from
converged it is). Completeness alone is not convergence: on EfficientNet-Lite0 a 16-interval grid
can meet |sum IG - (f(h) - f(0))| < 1 % while the scores are 19 % (relative L2) from a
1024-interval reference, because the errors of single neurons cancel in the sum. So the default
refines the grid until the scores themselves stop moving: the grid is a set of panels (two
intervals each); a panel's own error estimate is the change of its scores between its coarse
trapezoid (one interval) and its fine one (two), a vector over the neurons. Each round splits the
REFINE // 2 panels whose estimate is largest on the deciding neurons (those that can enter the
top-k: the 2k highest scores, or all when k is not given), in one batch of REFINE points. IG stops
when the summed estimate on those neurons is within SCORE_TOLERANCE of their norm (or its sum of
magnitudes under ABSOLUTE_FLOOR, in the target's units) and completeness holds to TOLERANCE (or to
ABSOLUTE_FLOOR: a near-zero f(h) - f(0) is not chased); otherwise at MAX_STEPS, the memory for the
kept gradients, or `time_limit`, and then the result says it did not converge.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np

from smugir.budget import require
from smugir.errors import InputError, UnsupportedModelError
from smugir.gradients import FiniteDifferences, GradientGraph, GradientProvider, fallback_reason
from smugir.model import declared_bytes, suffix_model, with_batch_of_one

START_STEPS = 16  # uniform intervals before any refinement
START_ALPHAS = tuple(2.0 ** -k for k in (20, 16, 12, 8, 4))  # where the path starts if the baseline's gradient is not finite
REFINE = 8  # new points per round: one batch of gradient evaluations
MAX_STEPS = 4096  # intervals at most
MAX_GRADIENT_BYTES = 1 << 30  # float32 score densities and panel estimates kept until the grid is final
TOLERANCE = 0.01  # completeness: |sum IG - (f(h) - f(0))| relative to |f(h) - f(0)|
# The estimated change of the deciding scores, relative L2. The estimate (coarse minus fine
# trapezoid) is conservative where the derivative jumps (ReLU6 kinks): on EfficientNet-Lite0 the
# true distance to a 1024-interval reference was about half of it (benchmarks/bench_attribution.py).
SCORE_TOLERANCE = 0.02
ABSOLUTE_FLOOR = 1e-4  # in the target's units (probability or logit): errors below this are not chased
TIME_LIMIT = 20.0  # seconds of gradient evaluations for the adaptive rule by default: with loading, the gradient
# graph and the solve, a full-size DenseNet-121 explanation then stays under 30 s (benchmarks/bench_zoo.py)
GRAPH_COPIES = 3  # a gradient graph holds each forward tensor, its gradient and onnxruntime's scratch
GRAPH_PROBE_POINTS = 2  # the gradient session is checked batched on two points
BYTES_PER_POINT_VALUE = 40  # per IG point and first-layer value: float64 points and gradients, float32 copies


@dataclass(frozen=True)
class IGResult:
    scores: np.ndarray  # one score per element of h (flat)
    steps: int  # trapezoid intervals (uniform when fixed, refined where needed when adaptive)
    completeness_error: float
    f_h: float
    f_0: float
    target: str
    provider: str
    seconds: float  # gradient evaluations and quadrature, the gradient graph's build excluded
    score_error: float | None = None  # estimated relative L2 error of the deciding scores (None: one interval)
    deciding: int = 0  # neurons the score rule was checked on
    converged: bool = True
    stop: str = "converged"  # converged, floor, fixed steps, step cap, memory cap, time cap, start after the baseline
    graph_seconds: float = 0.0  # building the gradient sessions (0 when they were cached)
    start: float = 0.0  # where the path's quadrature starts: > 0 when the gradient at the baseline is not finite

    def to_json(self) -> dict:
        data = asdict(self)
        del data["scores"]
        return {**data, "summary": self.describe()}

    def describe(self) -> str:
        """One phrase for the terminal: converged or not, why, and the errors."""
        score = "n/a" if self.score_error is None else f"{100 * self.score_error:.2f} %"
        errors = f"estimated score error {score} on {self.deciding} deciding neurons, completeness error {100 * self.completeness_error:.2f} %"
        errors += "" if self.start == 0 else f"; from alpha {self.start:.3g}: the gradient at the baseline is not finite"
        if self.stop == "floor":
            return f"IG over {self.steps} steps (stopped at the absolute floor {ABSOLUTE_FLOOR:g}: f(h) - f(0) = {self.f_h - self.f_0:.3g}; {errors})"
        if self.converged:
            return f"IG over {self.steps} steps ({'fixed, ' if self.stop == 'fixed steps' else ''}converged: {errors})"
        return f"IG not converged ({self.stop} after {self.steps} steps: {errors})"


@dataclass(frozen=True)
class IGProgress:
    """A snapshot of a running IG: points evaluated, seconds, and the seconds estimated to remain.

    The estimate assumes the trapezoid rule's error falls as the square of the points (its order
    on smooth paths): the points needed are those so far times sqrt(error / tolerance) of the
    worse of both errors; it is capped by the time limit. None while nothing is known."""

    points: int
    seconds: float
    eta: float | None
    score_error: float | None = None
    completeness: float | None = None

    def describe(self) -> str:
        eta = "" if self.eta is None else f", about {self.eta:.0f} s left"
        error = "" if self.score_error is None else f", score error {100 * self.score_error:.1f} %"
        return f"{self.points} gradient points in {self.seconds:.0f} s{error}{eta}"


OnIGProgress = Callable[[IGProgress], None]


def _relative_error(total: float, f_h: float, f_0: float) -> float:
    change = f_h - f_0
    return abs(total - change) / max(abs(change), 1e-12)


def _trapezoid_weights(alphas: np.ndarray) -> np.ndarray:
    widths = np.diff(alphas)
    weights = np.zeros(alphas.size)
    weights[:-1] += widths / 2
    weights[1:] += widths / 2
    return weights


@dataclass(frozen=True)
class _Check:
    """The stopping rule's view of one grid: each error, and whether it is met relatively or at the floor."""

    score_error: float | None
    completeness: float
    relative: bool  # both errors within their relative tolerance
    floor: bool  # both within the tolerance or the absolute floor

    @classmethod
    def of(cls, scores: np.ndarray, change: np.ndarray | None, completeness_gap: float, f_change: float, deciding: np.ndarray) -> "_Check":
        norm = float(np.linalg.norm(scores[deciding]))
        if change is None:
            score_error, score_ok, score_floor = None, False, False
        else:
            score_error = float(np.linalg.norm(change[deciding])) / max(norm, 1e-300)
            score_ok, score_floor = score_error <= SCORE_TOLERANCE, float(np.abs(change[deciding]).sum()) <= ABSOLUTE_FLOOR
        completeness = abs(completeness_gap) / max(abs(f_change), 1e-12)
        complete_ok, complete_floor = completeness <= TOLERANCE, abs(completeness_gap) <= ABSOLUTE_FLOOR
        return cls(score_error, completeness, score_ok and complete_ok, (score_ok or score_floor) and (complete_ok or complete_floor))


def _deciding(scores: np.ndarray, deciding: int | None) -> np.ndarray:
    """The neurons whose scores decide a top-k choice: the 2k highest (all when k is None or large)."""
    if deciding is None or 2 * deciding >= scores.size:
        return np.arange(scores.size)
    return np.argpartition(-scores, 2 * deciding - 1)[: 2 * deciding]


def integrated_gradients(
    provider: GradientProvider,
    h: np.ndarray,
    class_index: int,
    steps: int | None = None,
    baseline: np.ndarray | None = None,
    target: str = "probability",
    deciding: int | None = None,
    time_limit: float | None = TIME_LIMIT,
    on_progress: OnIGProgress | None = None,
) -> IGResult:
    """IG of `provider`'s target from `baseline` (default 0) to `h`; adaptive unless `steps` is given.

    `deciding`: the k of a later top-k choice (the score rule is checked on the 2k highest scores;
    None: on all); `time_limit`: seconds the adaptive rule may take, a batch that would end past
    it at the pace so far is not started (None: no limit);
    `on_progress` gets an `IGProgress` after every batch of gradient evaluations."""
    start = time.perf_counter()
    h = np.asarray(h, dtype=np.float64)
    base = np.zeros_like(h) if baseline is None else np.asarray(baseline, dtype=np.float64).reshape(h.shape)
    if steps is not None and int(steps) < 1:
        raise InputError(f"IG steps must be >= 1, got {steps}")
    path = _Path(provider, base, h - base, class_index, on_progress, time_limit)
    if steps is not None:
        scores, change, f, gap = path.uniform(int(steps))
        stop = "fixed steps"
    else:
        scores, change, f, gap, stop = path.refined(deciding, None if time_limit is None else start + time_limit)
    chosen = _deciding(scores, deciding)
    check = _Check.of(scores, change, gap, f[-1] - f[0], chosen)
    if stop == "converged" and not check.relative:
        stop = "floor"
    converged = check.floor if stop in ("fixed steps", "converged", "floor") else False
    if path.start_alpha > 0 and stop in ("converged", "floor") and not converged:
        stop = "start after the baseline"
    return IGResult(scores, path.intervals, check.completeness, float(f[-1]), float(f[0]), target, provider.name,
                    time.perf_counter() - start, check.score_error, int(chosen.size), converged, stop, start=path.start_alpha)


class _Path:
    """Gradient evaluations along base + alpha * diff, in float32 batches as onnxruntime takes them.

    What is kept of a point is its score density u = gradient * diff (float32): IG is its integral."""

    def __init__(self, provider: GradientProvider, base: np.ndarray, diff: np.ndarray, class_index: int,
                 on_progress: OnIGProgress | None = None, time_limit: float | None = None):
        self.provider, self.class_index, self.shape = provider, class_index, base.shape
        self.base32, self.diff32 = base.astype(np.float32), diff.astype(np.float32)
        self.diff = diff.reshape(-1)
        self.intervals = 0
        self.start_alpha, self.f_baseline = 0.0, None  # set by `first_grid` when the baseline's gradient is not finite
        self.on_progress, self.time_limit = on_progress, time_limit
        self.start, self.points = time.perf_counter(), 0

    def report(self, needed: float | None, score_error: float | None = None, completeness: float | None = None) -> None:
        """Tell `on_progress` how far IG is: `needed` is the estimated number of points in all."""
        if self.on_progress is None:
            return
        seconds = time.perf_counter() - self.start
        eta = None if needed is None else max(0.0, needed - self.points) * seconds / max(self.points, 1)
        if eta is not None and self.time_limit is not None:
            eta = min(eta, max(0.0, self.time_limit - seconds))
        self.on_progress(IGProgress(self.points, seconds, eta, score_error, completeness))

    def seconds_for(self, points: int) -> float:
        """How long `points` more gradient evaluations should take, at the pace so far."""
        return points * (time.perf_counter() - self.start) / max(self.points, 1)

    def evaluate(self, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(f (B,) float64, score densities (B, n) float32) at the given alphas."""
        require(f"Integrated Gradients at {len(alphas)} points of {self.diff.size} values", BYTES_PER_POINT_VALUE * len(alphas) * self.diff.size)
        points = self.base32[None] + alphas.astype(np.float32).reshape(-1, *([1] * len(self.shape))) * self.diff32[None]
        values, grads = self.provider(points, self.class_index)
        density = np.asarray(grads, dtype=np.float32).reshape(len(alphas), -1)
        density *= self.diff32.reshape(1, -1)  # in place: the gradients are not used again
        self.points += len(alphas)
        return np.asarray(values, dtype=np.float64).reshape(-1), density

    def uniform(self, steps: int, batch: int = 64) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, float]:
        """The trapezoid rule on `steps` equal intervals, summed batch by batch (nothing kept), and its
        change from the grid of every other point (plus the end point); None for a single interval.

        (scores, change, f at the grid points, completeness gap)."""
        alphas = np.linspace(0.0, 1.0, steps + 1)
        weights = _trapezoid_weights(alphas)
        every_other = np.unique(np.r_[np.arange(0, steps + 1, 2), steps])
        coarse = np.zeros(alphas.size)
        coarse[every_other] = _trapezoid_weights(alphas[every_other])
        scores, halved, values, slopes = np.zeros(self.diff.size), np.zeros(self.diff.size), [], []
        for begin in range(0, alphas.size, batch):
            f, density = self.evaluate(alphas[begin : begin + batch])
            scores += weights[begin : begin + batch] @ density.astype(np.float64)
            halved += coarse[begin : begin + batch] @ density.astype(np.float64)
            values.append(f)
            slopes.append(density.sum(axis=1, dtype=np.float64))
            self.report(alphas.size)
        self.intervals = steps
        f, total = np.concatenate(values), float(weights @ np.concatenate(slopes))
        return scores, None if steps < 2 else scores - halved, f, total - (f[-1] - f[0])

    def refined(self, deciding: int | None, deadline: float | None):
        """START_STEPS uniform intervals as panels of two, then REFINE // 2 panels split per round
        where the estimated score error (or, once the scores hold, the completeness gap) is largest.

        (scores, summed panel estimates, f on the sorted grid, completeness gap, stop reason)."""
        grid = self.first_grid(deadline)
        f_change = grid.values[1] - (grid.values[0] if self.f_baseline is None else self.f_baseline)
        most_points = min(MAX_STEPS + 1, MAX_GRADIENT_BYTES // (6 * max(1, self.diff.size)) + 1)
        while True:
            chosen = _deciding(grid.scores, deciding)
            gap = sum(grid.gaps.values())
            check = _Check.of(grid.scores, grid.change, gap, f_change, chosen)
            self.report(_points_needed(len(grid.points), check), check.score_error, check.completeness)
            stop = ("converged" if check.floor else "step cap" if len(grid.points) + REFINE > MAX_STEPS + 1
                    else "memory cap" if len(grid.points) + REFINE > most_points
                    else "time cap" if deadline is not None and time.perf_counter() + self.seconds_for(REFINE) > deadline else None)
            if stop is not None:
                break
            if check.score_error is not None and check.score_error > SCORE_TOLERANCE:
                size = {p: float(np.linalg.norm(e[chosen])) for p, e in grid.estimates.items()}
            else:
                size = {p: abs(g) for p, g in grid.gaps.items()}
            split = sorted(size, key=lambda p: -size[p])[: REFINE // 2]
            new = np.array([grid.midpoint(a, m) for a, m, _ in split] + [grid.midpoint(m, b) for _, m, b in split])
            first = grid.extend(new, *self.evaluate(new))
            for j, (a, m, b) in enumerate(split):
                grid.remove((a, m, b))
                grid.add((a, first + j, m))
                grid.add((m, first + len(split) + j, b))
        self.intervals = len(grid.points) - 1
        f = np.asarray(grid.values)[np.argsort(grid.points, kind="stable")]
        if self.f_baseline is not None:  # the part of the path before the grid's first point
            gap -= f[0] - self.f_baseline
            f = np.r_[self.f_baseline, f]
        return grid.scores, grid.change, f, gap, stop

    def _graded_grid(self, f: np.ndarray, density: np.ndarray) -> "_Grid | None":
        """Where the gradient at the baseline is not finite, a grid from the first alpha of
        START_ALPHAS (2^-K) whose gradient is finite: one panel per doubling, [2^-k, 2^-k+1] with its
        midpoint, so the integrable spike at the baseline is resolved where it is steep (a
        random-weight Swin-T has zero biases: at h = 0 every LayerNorm sees a zero vector and
        multiplies the gradient by 1/sqrt(eps); 20 of them overflow float32). The part before 2^-K
        counts in the completeness error: f(2^-K h) - f(0) is known, its split over neurons is not.
        None when no start has a finite gradient."""
        found = _first_finite(self)
        if found is None:
            return None
        alpha, f_start, start = found
        self.start_alpha, self.f_baseline = alpha, float(f[0])
        edges = alpha * 2.0 ** np.arange(1, round(-np.log2(alpha)))  # between 2^-K and 1
        mids = 1.5 * alpha * 2.0 ** np.arange(round(-np.log2(alpha)))
        values, rows = self.evaluate(np.r_[edges, mids])
        grid = _Grid([alpha, 1.0], [float(f_start[0]), float(f[1])], [start[0], density[1]])
        first = grid.extend(np.r_[edges, mids], values, rows)
        order = [0, *range(first, first + len(edges)), 1]  # the edges by alpha
        for k in range(len(mids)):
            grid.add((order[k], first + len(edges) + k, order[k + 1]))
        return grid

    def first_grid(self, deadline: float | None) -> "_Grid":
        """The START_STEPS uniform intervals, evaluated coarse to fine (alpha 0, 1 and 1/2, then the
        quarters, eighths, ...) so that a model too slow for the time limit stops on a coarser
        uniform grid (2 intervals at least) instead of overrunning it. Points 0 and 1 are alpha 0
        and 1; the panels are pairs of neighbouring intervals."""
        f, density = self.evaluate(np.array([0.0, 1.0, 0.5]))
        if not np.all(np.isfinite(density[0])) and np.isfinite(f[0]) and np.all(np.isfinite(density[1])):
            graded = self._graded_grid(f, density)
            if graded is not None:
                return graded
        grid = _Grid([0.0, 1.0, 0.5], f.tolist(), list(density))
        order = [0, 2, 1]  # point indices by alpha
        while len(order) - 1 < START_STEPS and (deadline is None or time.perf_counter() + self.seconds_for(len(order) - 1) <= deadline):
            alphas = [(grid.points[a] + grid.points[b]) / 2 for a, b in zip(order, order[1:])]
            first = grid.extend(np.array(alphas), *self.evaluate(np.array(alphas)))
            order = [i for pair in zip(order, range(first, first + len(alphas))) for i in pair] + [order[-1]]
            self.report(START_STEPS + 1)
        for i in range(0, len(order) - 1, 2):
            grid.add((order[i], order[i + 1], order[i + 2]))
        return grid


def _first_finite(path: "_Path") -> tuple[float, np.ndarray, np.ndarray] | None:
    """The first of START_ALPHAS where the gradient is finite: (alpha, f, density), or None."""
    for alpha in START_ALPHAS:
        f, density = path.evaluate(np.array([alpha]))
        if np.all(np.isfinite(density)):
            return alpha, f, density
    return None


def _points_needed(points: int, check: "_Check") -> float | None:
    """The grid size at which both errors would meet their tolerance, if they fall as 1 / points^2."""
    if check.score_error is None:
        return None
    worst = max(check.score_error / SCORE_TOLERANCE, check.completeness / TOLERANCE, 1.0)
    return min(points * float(np.sqrt(worst)), MAX_STEPS + 1.0)


class _Grid:
    """The points of an adaptive grid, its panels (point indices a < m < b, m the midpoint), and the
    running sums over the panels: fine-trapezoid scores and their summed coarse-to-fine changes."""

    def __init__(self, points: list[float], values: list[float], rows: list[np.ndarray]):
        self.points, self.values, self.rows = points, values, rows
        self.slopes = [float(r.sum(dtype=np.float64)) for r in rows]  # df/dalpha = gradient . diff
        self.scores, self.change = np.zeros(rows[0].size), np.zeros(rows[0].size)
        self.estimates: dict[tuple[int, int, int], np.ndarray] = {}  # the panel's fine minus coarse trapezoid (float32)
        self.gaps: dict[tuple[int, int, int], float] = {}  # the panel's fine trapezoid of df/dalpha minus f's change

    def midpoint(self, a: int, b: int) -> float:
        return (self.points[a] + self.points[b]) / 2

    def extend(self, alphas: np.ndarray, values: np.ndarray, rows: np.ndarray) -> int:
        """Append evaluated points; the index of the first."""
        first = len(self.points)
        self.points.extend(alphas.tolist())
        self.values.extend(values.tolist())
        self.rows.extend(rows)
        self.slopes.extend(rows.sum(axis=1, dtype=np.float64).tolist())
        return first

    def _parts(self, panel: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, float]:
        a, m, b = panel
        quarter = (self.points[b] - self.points[a]) / 4
        ua, um, ub = (self.rows[i].astype(np.float64) for i in panel)
        gap = quarter * (self.slopes[a] + 2 * self.slopes[m] + self.slopes[b]) - (self.values[b] - self.values[a])
        return quarter * (ua + 2 * um + ub), quarter * (2 * um - ua - ub), gap

    def add(self, panel: tuple[int, int, int]) -> None:
        fine, estimate, gap = self._parts(panel)
        self.scores += fine
        self.change += estimate
        self.estimates[panel], self.gaps[panel] = estimate.astype(np.float32), gap

    def remove(self, panel: tuple[int, int, int]) -> None:
        fine, estimate, _ = self._parts(panel)
        self.scores -= fine
        self.change -= estimate
        del self.estimates[panel], self.gaps[panel]


def top_k(scores: np.ndarray, eligible: np.ndarray, k: int) -> np.ndarray:
    """Up to k neurons with positive score among the eligible ones (True, or a value > 0, e.g. a
    positive activation), highest score first."""
    if int(k) < 1:
        raise InputError(f"top_k must be >= 1, got {k}")
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    eligible = np.flatnonzero((scores > 0) & (np.asarray(eligible).reshape(-1) > 0))
    order = eligible[np.argsort(-scores[eligible], kind="stable")]
    return order[: int(k)].astype(np.int64)


_PROVIDERS: dict[tuple[str, str, str, str], GradientProvider] = {}


def provider_for(model, tensor: str, target: str = "probability", kind: str = "auto") -> GradientProvider:
    """The gradient provider on the sub-model from `tensor` to the output (cached per model and tensor)."""
    key = (model.sha256, tensor, target, kind)
    if key not in _PROVIDERS:
        sub = with_batch_of_one(model.proto if tensor == model.input_name else suffix_model(model.proto, tensor))
        require(f"the gradient graph from {tensor!r} (its forward and backward tensors at the {GRAPH_PROBE_POINTS} probe points)",
                GRAPH_COPIES * GRAPH_PROBE_POINTS * declared_bytes(sub))
        if kind == "finite-differences":
            _PROVIDERS[key] = FiniteDifferences(sub, target)
        else:
            try:
                _PROVIDERS[key] = GradientGraph(sub, tensor, target)
            except UnsupportedModelError as exc:
                if kind == "gradient-graph":
                    raise
                _check_finite_differences(model, tensor, sub, exc)
                _PROVIDERS[key] = FiniteDifferences(sub, target, fallback=fallback_reason(exc))
    return _PROVIDERS[key]


MAX_FINITE_DIFFERENCES = 1 << 14  # elements: 2 model runs per element and gradient beyond this take hours


def _check_finite_differences(model, tensor: str, sub, reason: Exception) -> None:
    """Refuse the fallback where it cannot finish: 2 model runs per element of `tensor` per gradient."""
    value = next((v for v in sub.graph.input if v.name == tensor), None)
    size = int(np.prod([d.dim_value for d in value.type.tensor_type.shape.dim])) if value is not None else 0
    if size > MAX_FINITE_DIFFERENCES:
        raise UnsupportedModelError(
            f"no gradient graph for {model.path.name!r} ({reason}); finite differences over the {size} elements of "
            f"{tensor!r} would need {2 * size} model runs per gradient (limit {MAX_FINITE_DIFFERENCES} elements)"
        )


def forget_providers(model) -> None:
    """Drop the cached gradient sessions of `model`, e.g. a randomised copy that is never used again."""
    for key in [key for key in _PROVIDERS if key[0] == model.sha256]:
        del _PROVIDERS[key]


_RECENT_IG: OrderedDict[tuple, IGResult] = OrderedDict()
RECENT_IG = 2  # first-layer IG results kept: SMUG, SMUG_base and their variants on one input share one
SHARED_DECIDING = 32  # the score rule checks at least explain's default top-k, so smaller top-k and the default share one IG


def first_layer_attribution(model, layer, x: np.ndarray, label: int, steps: int | None = None, target: str = "probability",
                            provider: str = "auto", deciding: int | None = None, time_limit: float | None = TIME_LIMIT,
                            on_progress: OnIGProgress | None = None) -> IGResult:
    """IG scores of every first-layer neuron for `label` at input x (baseline: all activations 0);
    `deciding`, `time_limit` and `on_progress` as in `integrated_gradients` (`deciding` is raised to
    SHARED_DECIDING).

    The last few results are kept (keyed by model hash, input bytes and every option), so methods
    that explain the same input with the same ranking pay for IG once; a result checked on more
    deciding neurons (or on all, None) serves a request for fewer."""
    x = np.asarray(x)
    deciding = None if deciding is None else max(int(deciding), SHARED_DECIDING)
    key = (model.sha256, layer.post_name, hashlib.sha256(x.tobytes()).hexdigest(), x.dtype.str, x.shape, int(label), steps, target,
           provider, time_limit)
    for (stored_key, stored_deciding), stored in _RECENT_IG.items():
        if stored_key == key and (stored_deciding is None or (deciding is not None and stored_deciding >= deciding)):
            _RECENT_IG.move_to_end((stored_key, stored_deciding))
            return stored
    clock = time.perf_counter()
    first_points = (steps if steps is not None else START_STEPS) + 1  # checked before the gradient graph is built
    require(f"Integrated Gradients at {first_points} points of {layer.n_neurons} values", BYTES_PER_POINT_VALUE * first_points * layer.n_neurons)
    gradient = provider_for(model, layer.post_name, target, provider)
    building = time.perf_counter() - clock
    h = layer.activations(x).reshape(layer.output_shape[1:])
    result = integrated_gradients(gradient, h, label, steps, target=target, deciding=deciding, time_limit=time_limit,
                                  on_progress=on_progress)
    result = _RECENT_IG[key, deciding] = replace(result, graph_seconds=building)
    while len(_RECENT_IG) > RECENT_IG:
        _RECENT_IG.popitem(last=False)
    return result


INPUT_BASELINES = ("black", "white", "black+white")


def input_attribution(model, x: np.ndarray, label: int, baseline: str = "black", steps: int | None = None,
                      low: float = 0.0, high: float = 1.0, target: str = "probability", provider: str = "auto") -> np.ndarray:
    """Input-space IG (a baseline saliency method): black (low), white (high) or the mean of both."""
    if baseline not in INPUT_BASELINES:
        raise InputError(f"unknown IG baseline {baseline!r}; accepted: {', '.join(INPUT_BASELINES)}")
    gradient = provider_for(model, model.input_name, target, provider)
    x = np.asarray(x, dtype=np.float64).reshape(model.input_shape[1:] if model.input_shape[0] == 1 else model.input_shape)
    fills = {"black": [low], "white": [high], "black+white": [low, high]}[baseline]
    maps = [integrated_gradients(gradient, x, label, steps, np.full_like(x, v), target).scores for v in fills]
    return np.mean(maps, axis=0).reshape(model.input_shape)
