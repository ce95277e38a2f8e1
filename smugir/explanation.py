"""The result of an explanation: its masks with their float32 checks, the saliency map, and how
they were found (settings, attribution, solver, timings), as a summary, JSON or HTML."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from smugir.constraints import DEFAULT_FORMULATION
from smugir.problem import MaskProblem, NetworkMaskProblem
from smugir.solve import gap
from smugir.units import InputLayout, MaskUnits
from smugir.verify import Verification

# Why an explanation can say nothing (the `status` of such an explanation; CLI exit code 3).
VACUOUS = ("no_units", "non_finite", "no_neurons", "baseline_suffices")


@dataclass
class Found:
    """One mask of an explanation (several with `solutions=N`), with its float32 check."""

    unit_mask: np.ndarray  # (n_units,) bool
    status: str
    objective: float | None
    bound: float | None
    verification: Verification | None
    network_margin: float | None = None  # whole-network variant: onnxruntime logit margin on the masked input
    solve_details: dict[str, Any] = field(default_factory=dict)  # the backend's: presolve counts, LP bound, ...

    @property
    def gap(self) -> float | None:
        return gap(self.objective, self.bound)

    @property
    def verified(self) -> bool:
        if self.network_margin is not None:
            return self.network_margin > 0
        return self.verification is not None and self.verification.holds  # no mask (infeasible, timed out): not verified

    def to_json(self) -> dict:
        return {
            "status": self.status,
            "objective": self.objective,
            "bound": self.bound,
            "gap": self.gap,
            "kept_units": np.flatnonzero(self.unit_mask).tolist(),
            "verified": self.verified,
            "verification": self.verification.to_json() if self.verification else None,
            "network_margin": self.network_margin,
            "solve_details": dict(self.solve_details),
        }


@dataclass(frozen=True)
class Vacuous:
    """Why an explanation says nothing: a status from VACUOUS and one sentence for the user."""

    status: str
    reason: str


@dataclass
class Explanation:
    """The result of `explain`: masks (input-shaped), the SMUG saliency map, and how they were found."""

    model: str
    model_sha256: str
    label: int
    predicted: int
    method: str
    settings: dict[str, Any]
    layout: InputLayout
    units: MaskUnits
    x: np.ndarray
    baseline: np.ndarray
    found: list[Found]
    unit_saliency: np.ndarray  # (n_units,) the SMUG_base score of every unit
    neurons: list[int]
    neuron_scores: list[float]
    attribution: dict[str, Any]
    solver: str
    timings: dict[str, float] = field(default_factory=dict)
    problem: MaskProblem | NetworkMaskProblem | None = None
    vacuous: Vacuous | None = None  # set when the explanation says nothing (then never verified)

    @property
    def best(self) -> Found:
        return self.found[0]

    @property
    def status(self) -> str:
        """The solver's status (optimal, feasible, ...), or the VACUOUS status saying why there is no explanation."""
        return self.vacuous.status if self.vacuous else self.best.status

    @property
    def verified(self) -> bool:
        """A mask that means something and holds in float32 on onnxruntime."""
        return self.vacuous is None and self.best.verified

    @property
    def ig_converged(self) -> bool:
        """Whether the IG scores behind the neuron choice met the stopping rule (`smugir.attribution`)."""
        return bool(self.attribution.get("converged", True))

    @property
    def objective(self) -> float | None:
        return self.best.objective

    @property
    def bound(self) -> float | None:
        return self.best.bound

    @property
    def verification(self) -> Verification | None:
        return self.best.verification

    @property
    def unit_mask(self) -> np.ndarray:
        return self.best.unit_mask

    @property
    def mask(self) -> np.ndarray:
        """Input-shaped bool: True where the input is kept."""
        return self.units.expand(self.unit_mask).reshape(self.x.shape)

    @property
    def saliency(self) -> np.ndarray:
        """Input-shaped SMUG map: each kept unit's SMUG_base score, 0 elsewhere."""
        per_unit = np.where(self.unit_mask, self.unit_saliency, 0.0)
        inside = self.units.unit_of >= 0
        values = np.zeros(self.units.unit_of.shape)
        values[inside] = per_unit[self.units.unit_of[inside]]
        return values.reshape(self.x.shape)

    def _repr_html_(self) -> str:
        """Jupyter's view: what report.html shows (`smugir.exporters.html_report`)."""
        from smugir.exporters.html_report import report_fragment

        return report_fragment(self)

    def summary(self) -> str:
        """A few lines for the terminal: what was kept, whether it is proven minimal and verified."""
        kept = int(self.unit_mask.sum())
        bound = "" if self.bound is None else f", lower bound {self.bound:g}"
        if self.best.gap:
            bound += f", gap {100 * self.best.gap:.1f} %"
        lines = [
            f"model       {self.model} (label {self.label}, predicted {self.predicted})",
            f"method      {self.method}: {self.units.n_units} {self.units.kind} units ({self.units.description}), "
            f"top-k {self.settings['top_k']}, gamma {self.settings['gamma']}, baseline {self.settings['baseline']}, "
            f"formulation {self.settings.get('formulation', DEFAULT_FORMULATION)}",
            f"attribution {self.attribution['summary']}, {len(self.neurons)} neurons kept",
        ]
        if self.vacuous:
            lines.append(f"result      no explanation ({self.vacuous.status}): {self.vacuous.reason}")
        else:
            caveat = "" if self.ig_converged else " (IG not converged: the kept neurons may not be the top-k)"
            lines.append(
                f"result      {self.status}{caveat}: {kept} of {self.units.n_units} units kept "
                f"({100 * kept / max(self.units.n_units, 1):.1f} %){bound}; solver {self.solver}"
            )
            lines.extend(_verified_line(number, found) for number, found in enumerate(self.found, start=1))
        lines.append("timings     " + ", ".join(f"{k} {v:.3f} s" for k, v in self.timings.items()))
        return "\n".join(line for line in lines if line)

    def to_json(self) -> dict:
        kept = int(self.unit_mask.sum())
        return {
            "model": self.model,
            "model_sha256": self.model_sha256,
            "label": self.label,
            "predicted": self.predicted,
            "method": self.method,
            "settings": self.settings,
            "units": {"kind": self.units.kind, "count": self.units.n_units, "description": self.units.description},
            "layout": self.layout.name,
            "status": self.status,
            "reason": self.vacuous.reason if self.vacuous else None,
            "objective": self.objective,
            "bound": self.bound,
            "gap": self.best.gap,
            "kept_units": kept,
            "sparsity": kept / max(self.units.n_units, 1),
            "solver": self.solver,
            "verified": self.verified,
            "ig_converged": self.ig_converged,
            "solutions": [] if self.vacuous else [f.to_json() for f in self.found],
            "baseline_check": self.best.to_json() if self.vacuous and self.vacuous.status == "baseline_suffices" else None,
            "neurons": self.neurons,
            "neuron_scores": self.neuron_scores,
            "attribution": self.attribution,
            "timings_seconds": self.timings,
        }


def _verified_line(number: int, found: Found) -> str:
    v = found.verification
    if v is not None and v.min_slack is not None:
        return (
            f"verified    mask {number}: constraints {'hold' if v.holds else 'FAIL'} in float32 (min slack {v.min_slack:.4g}); "
            f"confidence {v.original.confidence:.3f} -> masked {v.masked.confidence:.3f} (class {v.masked.predicted}), "
            f"inverse {v.inverse_masked.confidence:.3f} (class {v.inverse_masked.predicted})"
        )
    if found.network_margin is not None:
        return f"verified    mask {number}: logit margin on onnxruntime {found.network_margin:+.4g} ({'holds' if found.verified else 'FAILS'})"
    return f"verified    no: no mask was found ({found.status}), so nothing could hold on onnxruntime"
