"""smugir's property-testing kit, for developers of encoders and solver backends.

Hypothesis strategies for random small ONNX classifiers whose first layer smugir reads
(`smugir.testing.models`, `.exporter_models`) and for masking problems small enough for brute
force (`.problems`), the brute force itself (`.brute_force`), and the harnesses a developer
calls in their own pytest suite: `check_backend(solve)` (`.backend_check`) and
`check_encoder(encode)` (`.encoder_check`). Needs hypothesis: `pip install 'smugir[testing]'`.
"""

from __future__ import annotations

try:
    import hypothesis  # noqa: F401
except ImportError:
    raise ImportError("smugir.testing needs hypothesis, which is not installed: pip install 'smugir[testing]'") from None

from smugir.testing.backend_check import check_backend, check_backend_answer
from smugir.testing.brute_force import BruteForce, brute_force, exactly_satisfied, exhaustive_minimum, feasible_masks
from smugir.testing.encoder_check import Encoded, check_encoded, check_encoder, encoder_problems
from smugir.testing.exporter_models import ExporterBuilt, exporter_models
from smugir.testing.graphs import Built, GraphBuilder, random_weights
from smugir.testing.models import ACTIVATIONS, conv_models, dense_models, first_layer_models, loaded_with_units
from smugir.testing.problems import (
    FirstLayerProblem,
    any_problems,
    first_layer_problems,
    mask_problems,
    masking_problems,
    Solved,
    network_problems,
    solved,
    tie_problems,
)
from smugir.testing.report import KitFailure, problem_code

__all__ = [
    "ACTIVATIONS", "Built", "BruteForce", "Encoded", "ExporterBuilt", "FirstLayerProblem", "GraphBuilder", "KitFailure",
    "any_problems", "brute_force", "check_backend", "check_backend_answer", "check_encoded", "check_encoder", "conv_models",
    "dense_models", "encoder_problems", "exactly_satisfied", "exhaustive_minimum", "exporter_models", "feasible_masks", "first_layer_models",
    "first_layer_problems", "loaded_with_units", "mask_problems", "masking_problems", "network_problems", "problem_code",
    "random_weights", "Solved", "solved", "tie_problems",
]
