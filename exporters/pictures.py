"""PNG pictures of an explanation that explain themselves: titled panels, a colour bar with its unit,
and masks drawn so that a few kept pixels stay visible at any size.

Small inputs (MNIST's 28x28) are enlarged with nearest-neighbour sampling so each pixel stays a
crisp square. A sparse map or mask on a large input (67 kept pixels of 224x224) would vanish when
the picture is shown at README width, so kept units get an outline (masks) or are spread over a
few display pixels (maps); the panel title says when that was done.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy.ndimage import binary_dilation, maximum_filter

from smugir.units import InputLayout

MIN_SIDE = 224
VISIBLE = 4  # display pixels a kept unit covers at least (an upscaled pixel, or a spread one)
SPARSE = 0.05  # maps with fewer non-zero pixels than this fraction are spread so they stay visible
OUTLINE = (57, 255, 20)  # the kept units' outline: bright green on any photo
NOT_KEPT = 0.5  # the SMUG map's grey where a pixel is not kept (its value is exactly 0): visible beside dark and bright
# "inferno" (matplotlib's perceptually uniform map), by its anchors: dark = low, bright = high.
_INFERNO = np.array([(0, 0, 4), (40, 11, 84), (101, 21, 110), (159, 42, 99), (212, 72, 66), (245, 125, 21),
                     (250, 193, 39), (252, 255, 164)], dtype=np.float64) / 255


def colormap(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (any shape) -> RGB in [0, 1] (shape + (3,)) on the inferno scale."""
    position = np.clip(np.asarray(values, dtype=np.float64), 0, 1) * (len(_INFERNO) - 1)
    low = np.minimum(np.floor(position).astype(int), len(_INFERNO) - 2)
    weight = (position - low)[..., None]
    return _INFERNO[low] * (1 - weight) + _INFERNO[low + 1] * weight


def to_rgb(image_chw: np.ndarray) -> np.ndarray:
    """(C, H, W) raw values -> (H, W, 3) floats in [0, 1], min-max scaled per picture."""
    image = image_chw.astype(np.float64)
    image = image[:3] if image.shape[0] >= 3 else np.repeat(image[:1], 3, axis=0)
    low, high = float(image.min()), float(image.max())
    scaled = (image - low) / (high - low) if high > low else np.zeros_like(image)
    return scaled.transpose(1, 2, 0)


def enlargement(height: int, width: int, side: int = MIN_SIDE) -> int:
    """The whole-number factor that makes the longer side at least `side` display pixels."""
    return max(1, -(-side // max(height, width, 1)))


def _enlarge(array: np.ndarray, factor: int) -> np.ndarray:
    return np.repeat(np.repeat(array, factor, axis=0), factor, axis=1)


def _image(rgb: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8), "RGB")


def spread_sparse(values_hw: np.ndarray, factor: int = 1) -> tuple[np.ndarray, bool]:
    """A (H, W) map, its non-zero pixels spread over VISIBLE display pixels when it is sparse and the
    enlargement `factor` alone would leave them smaller; and whether it was spread."""
    values_hw = np.abs(np.asarray(values_hw, dtype=np.float64))
    size = -(-VISIBLE // max(factor, 1))
    if size <= 1 or np.count_nonzero(values_hw) >= SPARSE * values_hw.size:
        return values_hw, False
    return maximum_filter(values_hw, size=size | 1), True


def map_scale(values_hw: np.ndarray) -> float:
    """The value shown brightest: the largest absolute value (1 for an all-zero map)."""
    top = float(np.max(np.abs(values_hw))) if np.size(values_hw) else 0.0
    return top if top > 0 and np.isfinite(top) else 1.0


def per_pixel(layout: InputLayout, values: np.ndarray) -> np.ndarray:
    """A flat, input-shaped map -> (H, W): the largest absolute value over the channels."""
    return np.abs(layout.to_image(np.asarray(values, dtype=np.float64).reshape(-1))).max(axis=0)


def input_picture(layout: InputLayout, x: np.ndarray) -> Image.Image:
    rgb = to_rgb(layout.to_image(np.asarray(x).reshape(-1)))
    return _image(_enlarge(rgb, enlargement(*rgb.shape[:2])))


def saliency_picture(layout: InputLayout, saliency: np.ndarray) -> Image.Image:
    """The map on the inferno scale, dark = low and bright = the largest value; pixels exactly 0
    (not kept) light grey, so that kept units of a low score still stand out (see `saliency_spread`)."""
    values = per_pixel(layout, saliency)
    factor = enlargement(*values.shape)
    shown, _ = spread_sparse(values, factor)
    shown = _enlarge(shown, factor)
    rgb = colormap(shown / map_scale(values))
    rgb[shown == 0] = NOT_KEPT
    return _image(rgb)


def saliency_spread(layout: InputLayout, saliency: np.ndarray) -> bool:
    """Whether `saliency_picture` spread the map's pixels to keep them visible."""
    values = per_pixel(layout, saliency)
    return spread_sparse(values, enlargement(*values.shape))[1]


def overlay_picture(layout: InputLayout, x: np.ndarray, mask: np.ndarray) -> Image.Image:
    """The input with masked-out pixels darkened and tinted, kept pixels as they are and outlined."""
    rgb = to_rgb(layout.to_image(np.asarray(x).reshape(-1)))
    kept = layout.to_image(np.asarray(mask, dtype=bool).reshape(-1)).any(axis=0)
    factor = enlargement(*kept.shape)
    rgb, kept = _enlarge(rgb, factor), _enlarge(kept, factor)
    tint = np.array([0.15, 0.05, 0.25])
    shown = np.where(kept[:, :, None], rgb, 0.25 * rgb + tint)
    if outlined(mask):
        width = max(1, max(kept.shape) // 112)  # 2 display pixels on a 224-pixel picture
        ring = binary_dilation(kept, iterations=width) & ~kept
        shown[ring] = np.array(OUTLINE) / 255
    return _image(shown)


def outlined(mask: np.ndarray) -> bool:
    """Whether `overlay_picture` outlines the kept units: when they are few (a dense mask's outline
    would hide the picture, and its kept area is visible anyway)."""
    return float(np.mean(np.asarray(mask, dtype=bool))) < 2 * SPARSE


# ---- titled panels and the composed figure ---------------------------------------------------------


def font(size: int = 15) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's own font (no file to find); below 13 pixels its spaces collapse, so nothing is drawn smaller."""
    return ImageFont.load_default(size=max(size, 13))


def _text_lines(draw: ImageDraw.ImageDraw, text: str, width: int, face) -> list[str]:
    """`text` wrapped on spaces to lines at most `width` display pixels wide."""
    lines: list[str] = []
    for word in text.split():
        trial = f"{lines[-1]} {word}" if lines else word
        if lines and draw.textlength(trial, font=face) <= width:
            lines[-1] = trial
        else:
            lines.append(word)
    return lines or [""]


def titled(picture: Image.Image, title: str, note: str = "", size: int = 15, min_lines: int = 2) -> Image.Image:
    """`picture` with a title above it (at least `min_lines` high, so panels side by side line up)
    and an optional smaller note below, on white."""
    face, small = font(size), font(size - 2)
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    title_lines = _text_lines(scratch, title, picture.width, face)
    title_lines += [""] * (min_lines - len(title_lines))
    note_lines = _text_lines(scratch, note, picture.width, small) if note else []
    line, small_line = size + 4, size + 2
    height = len(title_lines) * line + 4 + picture.height + (4 + len(note_lines) * small_line if note_lines else 0)
    canvas = Image.new("RGB", (picture.width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for number, text in enumerate(title_lines):
        draw.text((0, number * line), text, fill="black", font=face)
    top = len(title_lines) * line + 4
    canvas.paste(picture, (0, top))
    for number, text in enumerate(note_lines):
        draw.text((0, top + picture.height + 4 + number * small_line), text, fill=(70, 70, 70), font=small)
    return canvas


def colour_bar(width: int, top: float, unit: str, size: int = 13) -> Image.Image:
    """A horizontal inferno bar from 0 to `top`, its ends labelled, `unit` under it."""
    face = font(size)
    bar = _image(colormap(np.tile(np.linspace(0, 1, width), (12, 1))))
    lines = len(_text_lines(ImageDraw.Draw(Image.new("RGB", (1, 1))), unit, width, face))
    canvas = Image.new("RGB", (width, 14 + (lines + 1) * (size + 4)), "white")
    canvas.paste(bar, (0, 0))
    draw = ImageDraw.Draw(canvas)
    draw.text((0, 14), "0", fill="black", font=face)
    high = f"{top:.3g}"
    draw.text((width - draw.textlength(high, font=face), 14), high, fill="black", font=face)
    for number, line in enumerate(_text_lines(draw, unit, width, face)):
        draw.text(((width - draw.textlength(line, font=face)) / 2, 14 + (number + 1) * (size + 4)), line, fill="black", font=face)
    return canvas


def stacked(pictures: list[Image.Image], gap: int = 4) -> Image.Image:
    """Pictures one under the other, left-aligned."""
    canvas = Image.new("RGB", (max(p.width for p in pictures), sum(p.height for p in pictures) + gap * (len(pictures) - 1)), "white")
    top = 0
    for picture in pictures:
        canvas.paste(picture, (0, top))
        top += picture.height + gap
    return canvas


def side_by_side(pictures: list[Image.Image], gap: int = 12) -> Image.Image:
    width = sum(p.width for p in pictures) + gap * (len(pictures) - 1)
    height = max(p.height for p in pictures)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    left = 0
    for picture in pictures:
        canvas.paste(picture, (left, 0))
        left += picture.width + gap
    return canvas


def with_border(picture: Image.Image, margin: int = 10) -> Image.Image:
    canvas = Image.new("RGB", (picture.width + 2 * margin, picture.height + 2 * margin), "white")
    canvas.paste(picture, (margin, margin))
    return canvas


def explanation_figure(explanation) -> Image.Image:
    """Input | SMUG map with its colour bar | mask over the input, each panel titled with what it shows."""
    layout = explanation.layout
    kept, total = int(explanation.unit_mask.sum()), explanation.units.n_units
    values = per_pixel(layout, explanation.saliency)
    spread = saliency_spread(layout, explanation.saliency)
    first = titled(input_picture(layout, explanation.x), f"input: label {explanation.label}, predicted {explanation.predicted}")
    heat = saliency_picture(layout, explanation.saliency)
    bar = colour_bar(heat.width, map_scale(values), f"SMUG_base score (IG to label {explanation.label}); grey: not kept")
    second = titled(stacked([heat, bar]), f"SMUG map: score of the {kept} kept units",
                    "kept pixels enlarged to stay visible" if spread else "")
    verdict = "no explanation: " + explanation.status if explanation.vacuous else (
        f"{explanation.status}, {'verified' if explanation.verified else 'NOT verified'} in float32")
    third = titled(overlay_picture(layout, explanation.x, explanation.mask), f"mask: {kept} of {total} {explanation.units.kind} units kept",
                   f"{'green outline' if outlined(explanation.mask) else 'bright'} = kept, dimmed = set to the baseline; {verdict}")
    return with_border(side_by_side([first, second, third]))


def png_bytes(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
