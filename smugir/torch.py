"""PyTorch bridge: an `nn.Module` and an example input -> ONNX in memory -> a smugir `Model`.

smugir explains ONNX graphs; this module spares a PyTorch user the export decisions. It exports
with the settings smugir reads best (the TorchScript exporter at opset 17, or the dynamo exporter at
opset 20 on request; one input 'input', one output 'logits', constants folded, a fixed batch of one
unless asked), always in eval mode, and checks the export against the module on the example before
anything is explained. Needs the `torch` extra: `pip install 'smugir[torch]'`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import warnings
from typing import Any, Iterator, Literal

import numpy as np

from smugir.errors import InputError, MissingDependencyError, SmugError, UnsupportedModelError

try:
    import torch
except ImportError:
    raise MissingDependencyError("smugir.torch needs PyTorch: pip install 'smugir[torch]'") from None

from smugir.budget import require
from smugir.model import Model, load_model_bytes

Exporter = Literal["torchscript", "dynamo"]
EXPORTERS = ("torchscript", "dynamo")
OPSETS = {"torchscript": 17, "dynamo": 20}  # the opsets smugir's exporter tests read (tests/data/zoo)
INPUT_NAME, OUTPUT_NAME = "input", "logits"
# Layers whose forward differs between train and eval mode.
MODE_DEPENDENT = (torch.nn.modules.dropout._DropoutNd, torch.nn.modules.batchnorm._BatchNorm,
                  torch.nn.modules.instancenorm._InstanceNorm)
# The export must give the module's own scores on the example (float32 reordering allowed).
EXPORT_RTOL, EXPORT_ATOL = 1e-4, 1e-5


def to_onnx(module: torch.nn.Module, example: Any, exporter: Exporter = "torchscript", opset: int | None = None,
            dynamic_batch: bool = False) -> bytes:
    """The ONNX bytes of `module` on `example` (a tensor or array shaped as `module` takes it), in eval mode."""
    return _exported(module, _tensor(example), exporter, opset, dynamic_batch)[0]


def to_model(module: torch.nn.Module, example: Any, exporter: Exporter = "torchscript", opset: int | None = None,
             dynamic_batch: bool = False) -> Model:
    """`module` exported (`to_onnx`) and loaded as a smugir `Model`, checked to give the module's
    scores on `example`."""
    example = _tensor(example)
    raw, expected = _exported(module, example, exporter, opset, dynamic_batch)
    model = load_model_bytes(raw, f"torch:{type(module).__name__}")
    got = model.run(example.cpu().numpy())[0].reshape(-1)
    if not np.allclose(got, expected, rtol=EXPORT_RTOL, atol=EXPORT_ATOL * max(1.0, float(np.abs(expected).max()))):
        raise UnsupportedModelError(
            f"the ONNX export of {type(module).__name__} ({exporter}) gives scores up to {float(np.abs(got - expected).max()):.3g} "
            f"away from the module's own on the example; not explained"
        )
    return model


def explain(module: torch.nn.Module, x: Any, label: int | None = None, exporter: Exporter = "torchscript",
            opset: int | None = None, **options: Any):
    """Explain `module`'s prediction on `x` (shaped as `module` takes it, e.g. (1, C, H, W)):
    `smugir.explain.explain` on the exported model, with its keyword `options` (top_k, gamma, window, ...)."""
    from smugir.explain import explain as explain_model

    x = _tensor(x)
    if not x.is_floating_point():
        raise InputError(f"x has dtype {str(x.dtype).removeprefix('torch.')}; smugir.torch.explain takes real-valued inputs "
                         "(a token-id text model: to_model, then smugir.text.explain_sentence)")
    return explain_model(to_model(module, x, exporter, opset), x.detach().cpu().numpy(), label=label, **options)


def _tensor(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, np.ndarray):
        array = value.astype(np.float32) if np.issubdtype(value.dtype, np.floating) else value
        return torch.from_numpy(np.ascontiguousarray(array))
    raise InputError(f"the example input must be one torch.Tensor or numpy array, got {type(value).__name__}")


@contextlib.contextmanager
def _eval_mode(module: torch.nn.Module) -> Iterator[None]:
    """Eval mode for the export (the explanation is of the deployed model), the module's own modes restored after."""
    modes = {name: sub.training for name, sub in module.named_modules()}
    changing = [f"{type(sub).__name__} {name!r}" for name, sub in module.named_modules()
                if sub.training and isinstance(sub, MODE_DEPENDENT)]
    if changing:
        shown = ", ".join(changing[:3]) + (f" and {len(changing) - 3} more" if len(changing) > 3 else "")
        warnings.warn(f"{type(module).__name__} is in training mode ({shown}): exported in eval mode "
                      "(dropout off, batch statistics from the running averages)", stacklevel=_caller_level())
    module.eval()
    try:
        yield
    finally:
        for name, sub in module.named_modules():
            sub.training = modes.get(name, sub.training)


def _exported(module: torch.nn.Module, example: torch.Tensor, exporter: str, opset: int | None,
              dynamic_batch: bool) -> tuple[bytes, np.ndarray]:
    """The ONNX bytes and the module's own scores on `example` (flat float64), both in eval mode."""
    if exporter not in EXPORTERS:
        raise InputError(f"unknown exporter {exporter!r}; accepted: {', '.join(EXPORTERS)}")
    if not isinstance(module, torch.nn.Module):
        raise InputError(f"expected a torch.nn.Module, got {type(module).__name__}")
    require(f"exporting {type(module).__name__} to ONNX (3 x its parameters and buffers)",
            3 * sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()]))
    with _eval_mode(module):
        scores = _scores(module, example)
        with _quiet_exporter():
            try:
                return _export(module, example, exporter, opset or OPSETS[exporter], dynamic_batch), scores
            except SmugError:
                raise
            except Exception as exc:  # the exporters raise many types; each becomes one line
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise UnsupportedModelError(f"torch.onnx.export ({exporter}) failed on {type(module).__name__}: {first}") from None


def _caller_level() -> int:
    """The `stacklevel` of the first frame outside this module, so a warning names the user's line."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename in (__file__, contextlib.__file__):
        frame, level = frame.f_back, level + 1
    return level


def _scores(module: torch.nn.Module, example: torch.Tensor) -> np.ndarray:
    """The module's class scores for one sample, checked before anything is exported: one float
    tensor of shape (C,) or (1, C), C >= 2."""
    with torch.no_grad():
        try:
            out = module(example)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise InputError(f"{type(module).__name__} fails on the example input of shape {list(example.shape)}: {first}") from None
    name = type(module).__name__
    if not isinstance(out, torch.Tensor):
        raise UnsupportedModelError(f"{name} returns a {type(out).__name__}; smugir explains a module returning one tensor of class scores")
    shape = list(out.shape)
    if not out.is_floating_point() or out.dim() not in (1, 2) or shape[-1] < 2:
        raise UnsupportedModelError(f"{name} returns a {str(out.dtype).removeprefix('torch.')} tensor of shape {shape}; "
                                    "smugir explains class scores: float, shape (C,) or (1, C) with C >= 2")
    if out.dim() == 2 and shape[0] != 1:
        raise InputError(f"{name} returns scores for {shape[0]} samples; give an example of one sample (batch 1)")
    return out.cpu().numpy().astype(np.float64).reshape(-1)


def _export(module: torch.nn.Module, example: torch.Tensor, exporter: str, opset: int, dynamic_batch: bool) -> bytes:
    names = {"input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME], "opset_version": opset}
    if exporter == "dynamo":
        try:
            import onnxscript  # noqa: F401  (the dynamo exporter's dependency)
        except ImportError:
            raise MissingDependencyError("exporter='dynamo' needs onnxscript: pip install 'smugir[torch]'") from None
        shapes = ({0: torch.export.Dim.DYNAMIC},) if dynamic_batch else None
        program = torch.onnx.export(module, (example,), dynamo=True, verbose=False, external_data=False,
                                    dynamic_shapes=shapes, **names)
        return program.model_proto.SerializeToString()
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    stream = io.BytesIO()
    torch.onnx.export(module, (example,), stream, dynamo=False, do_constant_folding=True, dynamic_axes=axes, **names)
    return stream.getvalue()


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporters' progress lines, deprecation notices and log warnings are not the user's concern here."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        logger.setLevel(level)
