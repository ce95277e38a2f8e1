"""How the tensor a first layer reads depends on the raw input: z = scale * x'[index] + shift.

x' is the raw input after the elementwise roundings a low-precision graph applies to it (a Cast to
float16, arithmetic done in float16): `Rounding` stages, each a function of one raw element. A mask
keeps each raw element at its value on x or on the baseline, so the rounded values of those two are
all a masking problem needs: the rounding is modelled exactly, not approximated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import ml_dtypes
import numpy as np

CONSTANT_ELEMENT = -1  # InputAffine.index of an element that reads no input (a Pad's value)
ROUNDING_DTYPES = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16}


@dataclass(frozen=True, eq=False)
class Rounding:
    """x'_i = dtype(scale_i * x_i + shift_i) where `where_i`, else x'_i = x_i; all arrays are (n_inputs,)."""

    dtype: str
    where: np.ndarray
    scale: np.ndarray
    shift: np.ndarray

    def __call__(self, x_flat: np.ndarray) -> np.ndarray:
        rounded = round_to(self.scale * x_flat + self.shift, self.dtype)
        return np.where(self.where, rounded, x_flat)

    def same_as(self, other: Rounding) -> bool:
        return self.dtype == other.dtype and all(np.array_equal(getattr(self, a), getattr(other, a)) for a in ("where", "scale", "shift"))


def round_to(values: np.ndarray, dtype: str) -> np.ndarray:
    """float64 values rounded to `dtype` (as onnxruntime's Cast rounds: to nearest, ties to even)."""
    return np.asarray(values, dtype=np.float32).astype(ROUNDING_DTYPES[dtype]).astype(np.float64)


def apply_roundings(roundings: tuple[Rounding, ...], x_flat: np.ndarray) -> np.ndarray:
    for stage in roundings:
        x_flat = stage(x_flat)
    return x_flat


def same_roundings(a: tuple[Rounding, ...], b: tuple[Rounding, ...]) -> bool:
    return len(a) == len(b) and all(x.same_as(y) for x, y in zip(a, b))


@dataclass(frozen=True)
class InputAffine:
    """z = scale * x'.flat[index] + shift, elementwise; index, scale and shift have z's shape.

    An element with index `CONSTANT_ELEMENT` reads no input (scale 0): it is z = shift, e.g. a value
    a `Pad` wrote, carried through later elementwise ops exactly. `roundings` make x' from x (none
    for a float32 graph); `apply` takes x' (callers apply the roundings once for the whole input).
    """

    index: np.ndarray
    scale: np.ndarray
    shift: np.ndarray
    roundings: tuple[Rounding, ...] = ()

    def apply(self, x_flat: np.ndarray) -> np.ndarray:
        """z for (rounded) raw inputs of shape (..., n_inputs): leading axes are a batch."""
        if self.index.min(initial=0) >= 0:
            return self.scale * x_flat[..., self.index] + self.shift
        reads = self.index >= 0
        taken = x_flat[..., np.where(reads, self.index, 0)]
        return np.where(reads, self.scale * taken, 0.0) + self.shift

    def layout(self, fn: Callable[[np.ndarray], np.ndarray]) -> InputAffine:
        return InputAffine(fn(self.index), fn(self.scale), fn(self.shift), self.roundings)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.index.shape)


def identity_affine(shape: tuple[int, ...]) -> InputAffine:
    """z = x: the data input itself."""
    return InputAffine(np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape), np.ones(shape), np.zeros(shape))
