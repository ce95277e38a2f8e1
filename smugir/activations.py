"""The first layer's activation functions, computed as the ONNX operators define them.

One entry per kind in `ACTIVATIONS`: the function (float64, elementwise) and how `smug inspect`
names it with its parameters, e.g. "Clip(0, 6)". The graph patterns that produce each kind (one op,
or written out in several, as `x * Sigmoid(x)`) are read in `smugir.reader.rules.activations`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.special import erf, expit


def _clip(x: np.ndarray, low: float, high: float) -> np.ndarray:
    # ONNX Clip: min(max(x, low), high); with low > high every value becomes high, as here.
    return np.minimum(np.maximum(x, low), high)


def _hard_sigmoid(x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    return np.maximum(0.0, np.minimum(1.0, alpha * x + beta))


@dataclass(frozen=True)
class ActivationKind:
    function: Callable[..., np.ndarray]
    parameters: tuple[str, ...] = ()


ACTIVATIONS: dict[str, ActivationKind] = {
    "none": ActivationKind(lambda x: x),
    "Relu": ActivationKind(lambda x: np.maximum(x, 0.0)),
    "LeakyRelu": ActivationKind(lambda x, alpha: np.where(x >= 0, x, alpha * x), ("alpha",)),
    "Sigmoid": ActivationKind(expit),
    "Tanh": ActivationKind(np.tanh),
    "Clip": ActivationKind(_clip, ("min", "max")),
    "HardSigmoid": ActivationKind(_hard_sigmoid, ("alpha", "beta")),
    "HardSwish": ActivationKind(lambda x: x * _hard_sigmoid(x, 1.0 / 6.0, 0.5)),
    "SiLU": ActivationKind(lambda x: x * expit(x)),  # Mul(x, Sigmoid(x)), as exporters write it
    "GELU": ActivationKind(lambda x: 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))),
    "GELUTanh": ActivationKind(lambda x: 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))),
}


@dataclass(frozen=True)
class Activation:
    """The activation after the first linear layer: a kind of `ACTIVATIONS` and its parameters."""

    kind: str = "none"
    params: tuple[float, ...] = ()

    def __post_init__(self):
        if self.kind not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.kind!r}; known: {', '.join(ACTIVATIONS)}")
        if len(self.params) != len(ACTIVATIONS[self.kind].parameters):
            raise ValueError(f"activation {self.kind} takes {ACTIVATIONS[self.kind].parameters}, got {self.params}")

    def __call__(self, pre: np.ndarray) -> np.ndarray:
        return ACTIVATIONS[self.kind].function(np.asarray(pre, dtype=np.float64), *self.params)

    @property
    def label(self) -> str:
        """How reports name it: "Relu", "Clip(0, 6)", "LeakyRelu(alpha=0.1)", "HardSigmoid(alpha=0.2, beta=0.5)"."""
        if not self.params:
            return self.kind
        if self.kind == "Clip":
            return f"Clip({self.params[0]:g}, {self.params[1]:g})"
        names = ACTIVATIONS[self.kind].parameters
        return f"{self.kind}(" + ", ".join(f"{n}={v:g}" for n, v in zip(names, self.params)) + ")"
