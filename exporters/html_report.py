"""`report.html`: one explanation as a self-contained page, and the same view in a notebook.

The input, the SMUG map with its colour bar, the mask (images: embedded PNGs; text: the sentence
with its kept words highlighted), the solver's status, bound, gap and times, the float32
verification of each mask, the kept neurons and their IG scores, the settings and the command
that made it. Explanations are read by duck typing (`smugir.explain.Explanation`'s attributes),
so this module imports nothing from the pipeline.
"""

from __future__ import annotations

import os
import shlex
from typing import Sequence

from PIL import Image

from smugir.exporters.html_page import esc, figure, fragment, number, page, png_uri, table, SORT_SCRIPT
from smugir.exporters.pictures import colour_bar, input_picture, map_scale, outlined, overlay_picture, per_pixel, png_bytes, saliency_picture, saliency_spread, stacked

SHOWN = 300  # display width of the pictures (CSS pixels; small inputs stay crisp squares)
NEURONS_SHOWN = 2000  # longer neuron lists are cut in the page (report.json has them all)


def _verdict(explanation) -> str:
    if explanation.vacuous:
        return f'<p class="bad">No explanation ({esc(explanation.vacuous.status)}): {esc(explanation.vacuous.reason)}</p>'
    kept, total = int(explanation.unit_mask.sum()), explanation.units.n_units
    proof = "proven minimal" if explanation.status == "optimal" else f"not proven minimal (status {esc(explanation.status)})"
    check = '<span class="good">verified in float32 on onnxruntime</span>' if explanation.verified else '<span class="bad">NOT verified in float32</span>'
    return (f"<p>Label {explanation.label} (predicted {explanation.predicted}): the mask keeps <b>{kept} of {total}</b> "
            f"{esc(explanation.units.kind)} units ({100 * kept / max(total, 1):.1f} %), {proof}, {check}.</p>")


def _pictures(explanation) -> str:
    layout, label = explanation.layout, explanation.label
    kept = int(explanation.unit_mask.sum())
    heat = saliency_picture(layout, explanation.saliency)
    heat = heat.resize((SHOWN, round(SHOWN * heat.height / heat.width)), Image.Resampling.NEAREST)  # at display size: the bar's text stays sharp
    bar = colour_bar(SHOWN, map_scale(per_pixel(layout, explanation.saliency)), f"SMUG_base score (IG to label {label}); grey: not kept")
    spread = " (kept pixels enlarged to stay visible)" if saliency_spread(layout, explanation.saliency) else ""
    return "".join([
        figure(png_uri(png_bytes(input_picture(layout, explanation.x))), f"input ({layout.name})", SHOWN),
        figure(png_uri(png_bytes(stacked([heat, bar]))), f"SMUG map: the SMUG_base score of each of the {kept} kept units{spread}", SHOWN),
        figure(png_uri(png_bytes(overlay_picture(layout, explanation.x, explanation.mask))),
               f"mask over the input: kept units {'outlined in green' if outlined(explanation.mask) else 'bright'}, the rest dimmed (set to the baseline)", SHOWN),
    ])


def _solutions(explanation) -> str:
    header = ["mask", "status", "kept units (objective)", "lower bound", "gap %", "verified", "min slack", "confidence: input",
              "masked (class)", "inverse masked (class)", "logit margin"]
    rows = []
    for number_, found in enumerate(explanation.found, start=1):
        v = found.verification
        rows.append([
            str(number_), found.status, number(found.objective), number(found.bound),
            "-" if found.gap is None else f"{100 * found.gap:.2f}", "yes" if found.verified else "NO",
            number(v.min_slack if v else None),
            number(v.original.confidence if v else None),
            f"{number(v.masked.confidence)} ({v.masked.predicted})" if v else "-",
            f"{number(v.inverse_masked.confidence)} ({v.inverse_masked.predicted})" if v else "-",
            number(found.network_margin),
        ])
    return table(header, rows)


def _neurons(explanation) -> str:
    pairs = sorted(zip(explanation.neurons, explanation.neuron_scores), key=lambda pair: -pair[1])
    rows = [[str(n), (number(s), s)] for n, s in pairs[:NEURONS_SHOWN]]
    cut = f" (the {NEURONS_SHOWN} highest shown; report.json lists all)" if len(pairs) > NEURONS_SHOWN else ""
    return (f"<details><summary>{len(pairs)} first-layer neurons kept above gamma x their input value, "
            f"by IG score{cut}</summary>{table(['neuron', 'IG score'], rows, sortable=True)}</details>")


def _key_values(values: dict) -> str:
    return f'<div class="keys">{table(["setting", "value"], [[str(k), "-" if v is None else str(v)] for k, v in values.items()])}</div>'


def report_body(explanation, command: Sequence[str] | str | None = None, words: str | None = None) -> str:
    """The report's HTML (no page frame): shared by report.html and `Explanation._repr_html_`.

    `words`: for text models, the sentence with its kept words highlighted (HTML, already escaped)."""
    attribution = explanation.attribution
    completeness = attribution.get("completeness_error")
    parts = [
        f"<h1>smugir explanation of {esc(os.path.basename(explanation.model))}</h1>",
        _verdict(explanation),
        f'<p class="words">{words}</p>' if words is not None else _pictures(explanation),
        "<h2>Solver</h2>",
        f"<p>{esc(explanation.solver)}; method {esc(explanation.method)}, {explanation.units.n_units} "
        f"{esc(explanation.units.kind)} units ({esc(explanation.units.description)}).</p>",
        _solutions(explanation),
        "<h2>Attribution and neurons</h2>",
        f"<p>Integrated Gradients over {esc(attribution.get('steps'))} steps, completeness error "
        f"{'n/a' if completeness is None else f'{100 * completeness:.2f} %'}.</p>",
        _neurons(explanation),
        "<h2>Times (seconds)</h2>",
        table(["phase", "s"], [[k, f"{v:.3f}"] for k, v in explanation.timings.items()]),
        "<h2>Settings</h2>",
        _key_values({"model": explanation.model, "model sha256": explanation.model_sha256, "layout": explanation.layout.name,
                     **explanation.settings}),
    ]
    if command:
        text = command if isinstance(command, str) else shlex.join(command)
        parts += ["<h2>Command</h2>", f"<pre>{esc(text)}</pre>"]
    return "".join(parts)


def report_html(explanation, command: Sequence[str] | str | None = None, words: str | None = None) -> str:
    """report.html: a complete page, pictures embedded, nothing fetched."""
    return page(f"smugir: {os.path.basename(explanation.model)}", report_body(explanation, command, words), SORT_SCRIPT)


def report_fragment(explanation, words: str | None = None) -> str:
    """What a notebook shows for an explanation: the report's view in a styled <div>."""
    return fragment(report_body(explanation, None, words), SORT_SCRIPT)
