"""Baseline saliency methods from PAIR's `saliency.core`, run on ONNX models, and SMUG as a PAIR method.

PAIR's methods talk to a model only through `call_model_function(images, call_model_args,
expected_keys)`. `OnnxModelFunction` answers it with smugir's own gradient providers
(`smugir.attribution.provider_for`, a reverse-mode graph run by onnxruntime): the class output and
its input gradients, and for Grad-CAM the activations of the last convolutional block with the
gradients with respect to them. PAIR wants images as (H, W, C); the model's own layout (flat,
NHWC, NCHW) is converted on the way in and out.

`saliency_map(method, model, x, label, setting)` returns every method's map in the raw input's
shape. "Black" and "white" (IG baselines, XRAI, occlusion) are given in model-input units by the
`Setting`, so a model that wants normalised inputs gets normalised baselines.
"""

from __future__ import annotations

import hashlib
import inspect
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import saliency.core as pair
import saliency.core.blur_ig as pair_blur_ig
import saliency.core.guided_ig as pair_guided_ig
from skimage.filters import sobel

from smugir.attribution import provider_for
from smugir.errors import InputError, UnsupportedModelError
from smugir.inputs import per_channel
from smugir.firstlayer import first_layer
from smugir.model import Model, suffix_model
from smugir.units import InputLayout, input_layout

CLASS_KEY = "class"
PATH_STEPS = 64  # default steps of the path methods (IG, Blur IG, Guided IG, XRAI's IG)
MAX_PATH_STEPS = 4096  # as SMUG's own IG (smugir.attribution.MAX_STEPS)
SOLVE_KEY = "smugir_solve"  # where a SMUG method leaves its solver status in PAIR's call_model_args
ELEMENTWISE_AFTER_CONV = ("Relu", "LeakyRelu", "BatchNormalization", "Add", "Clip", "Sigmoid", "Tanh")
MODEL_FREE = ("edges",)  # controls that never look at the model


class _NumpyForGuidedIG:
    """numpy as saliency 0.2.1's Guided IG calls it: it passes `quantile(interpolation=...)`, which
    numpy 2 renamed to `method=`. Installed into that one module only, when numpy needs it."""

    def __getattr__(self, name: str):
        return getattr(np, name)

    @staticmethod
    def quantile(a, q, interpolation: str = "linear", **kwargs):
        return np.quantile(a, q, method=interpolation, **kwargs)


if "interpolation" not in inspect.signature(np.quantile).parameters:
    pair_guided_ig.np = _NumpyForGuidedIG()


def _gaussian_matrix(size: int, sigma: float) -> np.ndarray:
    """scipy's Gaussian filter along one axis of `size` values, zero outside, as a (size, size) matrix:
    weights exp(-x^2 / 2 sigma^2) out to int(4 sigma + 0.5), normalised over the whole kernel."""
    radius = int(4.0 * sigma + 0.5)
    offsets = np.subtract.outer(np.arange(size), np.arange(size))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    return np.exp(-0.5 * (offsets / sigma) ** 2) * (np.abs(offsets) <= radius) / taps.sum()


def _gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """saliency 0.2.1's Blur IG blur, `ndimage.gaussian_filter(image, [sigma, sigma, 0], mode="constant")`,
    as two matrix products: the same values to 1e-15, in 16 ms at any sigma on a 224 x 224 photo,
    where scipy's direct filter takes 53 ms at sigma 28 and 101 ms at 56. Blur IG blurs twice per
    step (128 times with 64 steps, sigma up to a quarter of the side), so the blur was 70 % of its time.
    Installed into that one module only."""
    if sigma == 0:
        return image
    rows, cols = _gaussian_matrix(image.shape[0], sigma), _gaussian_matrix(image.shape[1], sigma)
    return np.einsum("ij,jwc,kw->ikc", rows, image, cols, optimize=True)


pair_blur_ig.gaussian_blur = _gaussian_blur


def last_conv_tensor(model: Model) -> str:
    """Grad-CAM's layer: the output of the last Conv, followed through element-wise nodes (ReLU,
    residual Add, ...), taking the deepest tensor the logits depend on alone (NCHW)."""
    graph = model.proto.graph
    readers: dict[str, list] = {}
    for node in graph.node:
        for tensor in node.input:
            readers.setdefault(tensor, []).append(node)
    for conv in [n for n in graph.node if n.op_type == "Conv"][::-1]:
        chain = [conv.output[0]]
        while len(readers.get(chain[-1], [])) == 1 and readers[chain[-1]][0].op_type in ELEMENTWISE_AFTER_CONV:
            chain.append(readers[chain[-1]][0].output[0])
        for tensor in chain[::-1]:
            try:
                suffix_model(model.proto, tensor)
            except UnsupportedModelError:
                continue
            return tensor
    raise UnsupportedModelError(
        f"Grad-CAM needs a convolution whose output the logits depend on alone; {model.path.name!r} has none"
    )


class OnnxModelFunction:
    """PAIR's `call_model_function` for an ONNX model; `call_model_args={"class": label}`.

    `target` is what is differentiated: the class logit (the usual choice for saliency maps: no
    softmax saturation) or its softmax probability.
    """

    def __init__(self, model: Model, layout: InputLayout | None = None, target: str = "logit",
                 cache: "GradientCache | None" = None):
        self.model = model
        self.layout = layout or input_layout(model.input_shape)
        self.target = target
        self.cache = cache

    def _raw(self, images_hwc: np.ndarray) -> np.ndarray:
        return np.stack([self.layout.from_image(im.transpose(2, 0, 1), self.model.input_shape) for im in images_hwc])

    def _hwc(self, raw: np.ndarray) -> np.ndarray:
        return self.layout.to_image(raw.reshape(-1)).transpose(1, 2, 0)

    def __call__(self, images: np.ndarray, call_model_args: dict | None = None, expected_keys: list[str] | None = None) -> dict:
        if not call_model_args or CLASS_KEY not in call_model_args:
            raise InputError(f"call_model_args must name the class to explain: {{{CLASS_KEY!r}: label}}")
        label = int(call_model_args[CLASS_KEY])
        raw = self._raw(np.asarray(images, dtype=np.float64))
        keys = set(expected_keys or [])
        if self.cache is None:
            return self._answer(raw, label, keys)
        key = (self.model.sha256, self.target, label, tuple(sorted(keys)), raw.shape, hashlib.sha256(raw.tobytes()).hexdigest())
        return self.cache.get(key, lambda: self._answer(raw, label, keys))

    def _answer(self, raw: np.ndarray, label: int, keys: set[str]) -> dict:
        out: dict[str, np.ndarray] = {}
        if keys & {pair.INPUT_OUTPUT_GRADIENTS, pair.OUTPUT_LAYER_VALUES}:
            values, grads = provider_for(self.model, self.model.input_name, self.target)(raw, label)
            out[pair.OUTPUT_LAYER_VALUES] = values
            out[pair.INPUT_OUTPUT_GRADIENTS] = np.stack([self._hwc(g) for g in grads])
        if keys & {pair.CONVOLUTION_LAYER_VALUES, pair.CONVOLUTION_OUTPUT_GRADIENTS}:
            conv = last_conv_tensor(self.model)
            activations = np.concatenate([self.model.run(r, (conv,))[1] for r in raw])
            _, grads = provider_for(self.model, conv, self.target)(activations, label)
            out[pair.CONVOLUTION_LAYER_VALUES] = activations.transpose(0, 2, 3, 1)
            out[pair.CONVOLUTION_OUTPUT_GRADIENTS] = grads.reshape(activations.shape).transpose(0, 2, 3, 1)
        return {k: v for k, v in out.items() if k in keys}


class GradientCache:
    """Model answers for one input, shared by the methods that ask for the same points: IG from
    black and XRAI's IG from black run the same 64 gradients. Oldest answers go first beyond
    `max_bytes`, so memory stays bounded by one input's work."""

    def __init__(self, max_bytes: int = 1 << 28):
        self.max_bytes = max_bytes
        self.answers: OrderedDict[tuple, dict] = OrderedDict()
        self.hits = 0

    def get(self, key: tuple, compute: Callable[[], dict]) -> dict:
        if key in self.answers:
            self.hits += 1
            return self.answers[key]
        answer = self.answers[key] = compute()
        while len(self.answers) > 1 and sum(v.nbytes for a in self.answers.values() for v in a.values()) > self.max_bytes:
            self.answers.popitem(last=False)
        return answer


class SmugSaliency(pair.CoreSaliency):
    """SMUG as a PAIR method: `GetMask(image_hwc, None, {"class": label})` -> the SMUG map (H, W, C).

    SMUG reads the ONNX graph itself (first layer, solver), so it is built on a `Model` and ignores
    `call_model_function`. `grid` is how the model input holds the image (default: as `explain`
    reads it); `options` go to `smugir.explain.explain` (top_k, gamma, window, method="smug_base",
    solver, timeout, ...), and `segments` may also be a spec such as "slic:50", read per image.
    """

    def __init__(self, model: Model, grid: InputLayout | None = None, **options: Any):
        super().__init__()
        self.model = model
        self.grid = grid or input_layout(model.input_shape, options.get("layout", "auto"), options.get("image_shape"))
        self.options = options
        self.last_explanation = None

    def GetMask(self, x_value, call_model_function=None, call_model_args=None, **options):  # noqa: N802 (PAIR's name)
        from smugir.explain import explain
        from smugir.inputs import load_segments

        label = None if not call_model_args else call_model_args.get(CLASS_KEY)
        x = self.grid.from_image(np.asarray(x_value).transpose(2, 0, 1), self.model.input_shape)
        chosen = {**self.options, **options}
        if isinstance(chosen.get("segments"), str):
            chosen["segments"] = load_segments(chosen["segments"], x, self.grid)
        self.last_explanation = explain(self.model, x, label=label, **chosen)
        return self._hwc(self.last_explanation.saliency)

    def _hwc(self, raw: np.ndarray) -> np.ndarray:
        return self.grid.to_image(raw.reshape(-1)).transpose(1, 2, 0)


@dataclass(frozen=True)
class Setting:
    """What the methods need besides the model: the image grid, black and white in model-input
    units (one value per channel), the differentiated output, the seed of SmoothGrad's noise, and
    the options of SMUG (`smugir.explain.explain` keywords), and the steps of the path methods."""

    layout: InputLayout
    low: np.ndarray
    high: np.ndarray
    target: str = "logit"
    seed: int = 0
    smug: Mapping[str, Any] = field(default_factory=dict)
    path_steps: int = PATH_STEPS

    def constant(self, values: np.ndarray) -> np.ndarray:
        """An (H, W, C) image holding one value per channel."""
        shape = (self.layout.height, self.layout.width, self.layout.channels)
        return np.broadcast_to(np.asarray(values, dtype=np.float64), shape).copy()


def setting_for(model: Model, layout: InputLayout | None = None, low: float | np.ndarray = 0.0, high: float | np.ndarray = 1.0,
                target: str = "logit", seed: int = 0, smug: Mapping[str, Any] | None = None, path_steps: int = PATH_STEPS) -> Setting:
    """A `Setting` with black = `low`, white = `high` (a number, or one per channel)."""
    if not 2 <= int(path_steps) <= MAX_PATH_STEPS:
        raise InputError(f"path steps must be in [2, {MAX_PATH_STEPS}], got {path_steps}")
    layout = layout or input_layout(model.input_shape)
    low_a, high_a = per_channel(low, layout.channels, "black"), per_channel(high, layout.channels, "white")
    return Setting(layout, low_a, high_a, target, seed, dict(smug or {}), int(path_steps))


MapFunction = Callable[[np.ndarray, OnnxModelFunction, dict, Setting], np.ndarray]


def _ig(*baselines: str) -> MapFunction:
    def run(x, call, args, setting):
        return np.mean([pair.IntegratedGradients().GetMask(x, call, args, x_baseline=setting.constant(getattr(setting, b)),
                                                           x_steps=setting.path_steps, batch_size=setting.path_steps) for b in baselines], axis=0)
    return run


DEFAULT_PROBLEM = ("top_k", "gamma", "formulation", "window", "segments", "rank")  # what `smug_default` takes from explain's defaults


def smug_defaults() -> dict[str, Any]:
    """smugir's own settings of the masking problem: `smugir.explain.explain`'s defaults."""
    from smugir.explain import explain

    parameters = inspect.signature(explain).parameters
    return {name: parameters[name].default for name in DEFAULT_PROBLEM if name in parameters}


def _smug(base: bool = False, defaults: bool = False) -> MapFunction:
    def run(x, call, args, setting):
        options = dict(setting.smug)
        if base:
            options["method"] = "smug_base"
        if defaults:
            options.update(smug_defaults())
        method = SmugSaliency(call.model, setting.layout, **options)
        result = method.GetMask(x, None, args)
        explanation = method.last_explanation
        if not base:  # SMUG_base solves nothing
            args[SOLVE_KEY] = {"solve_status": explanation.status, "solve_gap": None if explanation.vacuous else explanation.best.gap}
        return result
    return run


def _edges(x, call, args, setting):
    """Not an explanation: the image's Sobel edges. It ignores the model, which the sanity checks must expose."""
    return np.stack([sobel(x[..., c]) for c in range(x.shape[-1])], axis=-1)


# PAIR's settings scaled to small images: IG-type paths of `Setting.path_steps` steps (64), Blur IG up to a quarter of the
# image side, Guided IG as in PAIR's examples, occlusion windows of an eighth of the side filled with
# the mean of the per-channel black values (PAIR takes one number).
METHODS: dict[str, MapFunction] = {
    "smug": _smug(),
    "smug_base": _smug(base=True),
    "smug_default": _smug(defaults=True),
    "gradient": lambda x, call, args, s: pair.GradientSaliency().GetMask(x, call, args),
    "smoothgrad": lambda x, call, args, s: pair.GradientSaliency().GetSmoothedMask(x, call, args, stdev_spread=0.15, nsamples=25, magnitude=True),
    "ig": _ig("low"),
    "ig_white": _ig("high"),
    "ig_black_white": _ig("low", "high"),
    "blur_ig": lambda x, call, args, s: pair.BlurIG().GetMask(x, call, args, max_sigma=max(x.shape[:2]) / 4, steps=s.path_steps, batch_size=s.path_steps),
    "guided_ig": lambda x, call, args, s: pair.GuidedIG().GetMask(x, call, args, x_baseline=s.constant(s.low), x_steps=s.path_steps, max_dist=1.0, fraction=0.5),
    "xrai": lambda x, call, args, s: pair.XRAI().GetMask(x, call, args, baselines=[s.constant(s.low), s.constant(s.high)],
                                                         extra_parameters=pair.XRAIParameters(steps=s.path_steps), batch_size=s.path_steps),
    "gradcam": lambda x, call, args, s: pair.GradCam().GetMask(x, call, args, should_resize=True, three_dims=False),
    "occlusion": lambda x, call, args, s: pair.Occlusion().GetMask(x, call, args, size=max(2, min(x.shape[:2]) // 8), value=float(np.mean(s.low))),
    "edges": _edges,
}


def check_methods(methods: list[str] | tuple[str, ...], extra: tuple[str, ...] = ()) -> None:
    """Refuse unknown names before any work, listing what is accepted."""
    unknown = [m for m in methods if m not in METHODS and m not in extra]
    if unknown:
        raise InputError(f"unknown saliency method(s) {', '.join(unknown)}; accepted: {', '.join((*METHODS, *extra))}")


def unavailable(model: Model, methods: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Methods this model cannot support, with the reason (Grad-CAM without a convolution, SMUG
    without a first layer it can read)."""
    reasons = {}
    for method in methods:
        try:
            if method == "gradcam":
                last_conv_tensor(model)
            elif method in ("smug", "smug_base", "smug_default"):
                first_layer(model)
        except UnsupportedModelError as exc:
            reasons[method] = str(exc)
    return reasons


def saliency_map(method: str, model: Model, x: np.ndarray, label: int, setting: Setting | None = None,
                 cache: GradientCache | None = None, details: dict[str, Any] | None = None) -> np.ndarray:
    """`method`'s map for class `label` at input x, in x's raw shape (the model's input layout).

    SmoothGrad draws its noise from numpy's global generator (PAIR's choice); it is seeded with
    `setting.seed` for the call and restored afterwards, so maps are reproducible. Methods given one
    `cache` share the gradients they ask for at the same points. SMUG's solver status and gap go
    into `details` when it is given.
    """
    check_methods([method])
    setting = setting or setting_for(model)
    layout = setting.layout
    image = layout.to_image(np.asarray(x, dtype=np.float64).reshape(-1)).transpose(1, 2, 0)
    state = np.random.get_state()
    np.random.seed(setting.seed)
    try:
        args: dict[str, Any] = {CLASS_KEY: int(label)}
        result = METHODS[method](image, OnnxModelFunction(model, layout, setting.target, cache), args, setting)
    finally:
        np.random.set_state(state)
    if details is not None:
        details.update(args.get(SOLVE_KEY, {}))
    result = np.asarray(result, dtype=np.float64)
    if result.ndim == 2:  # Grad-CAM, XRAI: one value per pixel
        result = np.repeat(result[..., None], layout.channels, axis=-1)
    return layout.from_image(result.transpose(2, 0, 1), model.input_shape)
