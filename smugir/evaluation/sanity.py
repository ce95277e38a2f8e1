"""Sanity checks (Adebayo et al. 2018): does a method's map change when the model does?

Maps of the original model are compared with maps of randomised models (cascading and
independent re-initialisation, Gaussian weight noise; see `randomize`). A method that explains
the model drifts away from its original map (correlation falling towards 0); one that does not
depend on the model (an edge detector) stays at 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Sequence

import numpy as np

from smugir.attribution import forget_providers
from smugir.errors import InputError
from smugir.evaluation.baselines import Setting, check_methods, saliency_map, setting_for, unavailable
from smugir.evaluation.classifier import ImageClassifier
from smugir.evaluation.randomize import parse_mode, steps
from smugir.evaluation.similarity import similarity
from smugir.model import Model

MODES = ("cascading", "independent", "noise:0.1", "noise:0.2", "noise:0.3")
SANITY_METHODS = ("gradient", "ig", "smoothgrad", "gradcam", "smug", "edges")


@dataclass(frozen=True)
class SanityRecord:
    """One method's map on one input under one randomised model, compared with the original map."""

    mode: str
    step: int  # 0 = the original model
    layer: str  # the layer changed last ("" for the original)
    method: str
    sample: str
    spearman_absolute: float
    spearman_signed: float
    ssim: float
    hog: float

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class SanityResult:
    records: list[SanityRecord]
    unavailable: dict[str, str]  # method -> why

    def _repr_html_(self) -> str:
        """Jupyter's view: what `smug sanity`'s index.html shows, the curves embedded."""
        from smugir.evaluation.gallery import sanity_fragment
        from smugir.evaluation.plots import curves_png

        return sanity_fragment(self.records, curves_png(self.records) if self.records else None)


def sanity_check(
    model: Model,
    inputs: np.ndarray,
    labels: Sequence[int] | None = None,
    methods: Sequence[str] = SANITY_METHODS,
    modes: Sequence[str] = MODES,
    setting: Setting | None = None,
    ids: Sequence[str] | None = None,
    seed: int = 0,
    progress: Callable[[Iterable], Iterable] = lambda items: items,
    max_steps: int | None = None,
) -> SanityResult:
    """Similarity of each method's map on each randomised model to its map on the original model,
    for the class `labels` (None: the original model's predictions) of every input; `max_steps`
    randomised models per mode (None: one per layer)."""
    methods = list(dict.fromkeys(methods))
    check_methods(methods)
    for mode in modes:
        parse_mode(mode)
    setting = setting or setting_for(model, seed=seed)
    inputs = np.asarray(inputs, dtype=np.float32).reshape((-1, *model.input_shape))
    ids = [str(i) for i in range(len(inputs))] if ids is None else [str(i) for i in ids]
    if len(ids) != len(inputs) or (labels is not None and len(labels) != len(inputs)):
        raise InputError(f"{len(inputs)} inputs but {len(ids)} ids and {'no' if labels is None else len(labels)} labels")
    classify = ImageClassifier(model, setting.layout)
    if labels is None:
        labels = classify(np.stack([classify.to_image(x) for x in inputs])).argmax(axis=1) if len(inputs) else []
    missing = unavailable(model, methods)
    methods = [m for m in methods if m not in missing]
    jobs = [(s, m) for s in range(len(inputs)) for m in methods]

    def map_of(step_model: Model, sample: int, method: str) -> np.ndarray:
        return classify.to_image(saliency_map(method, step_model, inputs[sample], int(labels[sample]), setting))

    original = {job: map_of(model, *job) for job in jobs}
    records = []
    for mode in progress(list(modes)):
        for step in steps(model, mode, seed, max_steps):
            for (sample, method), before in original.items():
                after = before if step.index == 0 else map_of(step.model, sample, method)
                measured = similarity(before, after)
                records.append(SanityRecord(mode, step.index, step.layers[-1] if step.layers else "", method, ids[sample],
                                            measured.spearman_absolute, measured.spearman_signed, measured.ssim, measured.hog))
            if step.index:
                forget_providers(step.model)  # a randomised model is never used again
    return SanityResult(records, missing)
