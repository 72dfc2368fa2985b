"""A generated near-duplicate set: originals, their edited variants, and other shots of one scene.

Shared by the near-duplicate tests and ``tests/benchmarks/bench_duplicates.py``. Originals are the
real photos of ``tests/data/photos`` plus generated scenes (a lit backdrop, objects with shading,
texture and grain, rendered through a camera window onto a larger world): a scene's *other shot*
moves the camera and some objects, as a second frame of a photo shoot does. Variants are the edits
a DAM library collects: other sizes, crops to 90% of each side (centred and off-centre), JPEG at
quality 30, brightness +-15%, a text watermark, and a combination.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

PHOTOS = Path(__file__).parent / "data" / "photos"


def real_photos() -> dict[str, Image.Image]:
    """The sample photos, as RGB images, by file stem."""
    return {p.stem: Image.open(p).convert("RGB") for p in sorted(PHOTOS.glob("*.jpg"))}


def scene(seed: int, size: tuple[int, int] = (640, 480), shot: int = 0) -> Image.Image:
    """A generated photo: scene ``seed`` seen in shot ``shot`` (0: the original framing).

    Another shot pans the camera by 20-30% of the frame and moves a third of the objects, so it
    shows the same backdrop, colours and things, composed differently.
    """
    rng = np.random.default_rng(seed)
    w, h = size
    world_w, world_h = int(w * 1.8), int(h * 1.8)
    top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    ramp = np.linspace(0, 1, world_h)[:, None, None]
    pixels = (top * (1 - ramp) + bottom * ramp) * np.ones((1, world_w, 1))
    # Low-frequency light and a fine texture: what a real surface and a real sensor give.
    light = _smooth_noise(rng, (world_h, world_w), 6) * 60
    pixels += light[..., None]
    world = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(world)
    shapes = [_shape(rng, world_w, world_h) for _ in range(int(rng.integers(7, 13)))]
    move = np.random.default_rng(seed * 7919 + shot)
    for i, (kind, box, colour) in enumerate(shapes):
        if shot and i % 3 == 0:
            dx, dy = move.integers(-world_w // 6, world_w // 6), move.integers(-world_h // 6, world_h // 6)
            box = (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy)
        shade = tuple(max(0, c - 70) for c in colour)
        if kind == 0:
            draw.ellipse(box, fill=colour, outline=shade, width=6)
        elif kind == 1:
            draw.rectangle(box, fill=colour, outline=shade, width=6)
        else:
            x0, y0, x1, y1 = box
            draw.polygon([(x0, y1), ((x0 + x1) // 2, y0), (x1, y1)], fill=colour, outline=shade)
    world = world.filter(ImageFilter.GaussianBlur(1.2))
    grain = rng.normal(0, 6, (world_h, world_w, 3))
    world = Image.fromarray(np.clip(np.asarray(world, np.float64) + grain, 0, 255).astype(np.uint8))
    cx, cy = (world_w - w) // 2, (world_h - h) // 2
    if shot:
        pan = np.random.default_rng(seed * 104729 + shot)
        sx, sy = pan.choice([-1, 1], 2)
        cx += int(sx * pan.uniform(0.2, 0.3) * w)
        cy += int(sy * pan.uniform(0.1, 0.2) * h)
    return world.crop((cx, cy, cx + w, cy + h))


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    coarse = rng.normal(0, 1, (cells, cells)).astype(np.float32)
    image = Image.fromarray(coarse, mode="F").resize((shape[1], shape[0]), Image.Resampling.BICUBIC)
    return np.asarray(image, np.float64)


def _shape(
    rng: np.random.Generator, w: int, h: int
) -> tuple[int, tuple[int, int, int, int], tuple[int, ...]]:
    sw, sh = int(rng.integers(w // 12, w // 3)), int(rng.integers(h // 12, h // 3))
    x, y = int(rng.integers(0, w - sw)), int(rng.integers(0, h - sh))
    return int(rng.integers(0, 3)), (x, y, x + sw, y + sh), tuple(int(c) for c in rng.integers(0, 256, 3))


def packshot(seed: int, size: tuple[int, int] = (600, 600), shot: int = 0) -> Image.Image:
    """A generated product shot: one object, centred on white, with a soft shadow.

    Packshots are the hard case for perceptual hashes: the white around every product makes
    distinct products alike. Another shot turns and moves the product a little.
    """
    rng = np.random.default_rng(10_000 + seed)
    w, h = size
    image = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    turn = np.random.default_rng(seed * 31 + shot).uniform(-0.25, 0.25) if shot else 0.0
    cx, cy = w / 2 + (w * 0.08 * np.sign(turn) if shot else 0), h / 2
    rx, ry = rng.uniform(0.15, 0.35) * w, rng.uniform(0.15, 0.35) * h
    sides = int(rng.integers(3, 9))
    angles = np.linspace(0, 2 * np.pi, sides, endpoint=False) + rng.uniform(0, np.pi) + turn
    jitter = rng.uniform(0.75, 1.0, sides)
    points = [(cx + rx * j * np.cos(a), cy + ry * j * np.sin(a)) for a, j in zip(angles, jitter, strict=True)]
    draw.ellipse((cx - rx, cy + ry * 0.9, cx + rx, cy + ry * 1.15), fill=(225, 225, 225))
    colour = tuple(int(c) for c in rng.integers(0, 220, 3))
    draw.polygon(points, fill=colour, outline=tuple(max(0, c - 60) for c in colour))
    label = tuple(int(c) for c in rng.integers(0, 256, 3))
    draw.rectangle((cx - rx * 0.3, cy - ry * 0.15, cx + rx * 0.3, cy + ry * 0.15), fill=label)
    return image.filter(ImageFilter.GaussianBlur(0.8))


def generated_scenes(count: int, first_seed: int = 1) -> dict[str, Image.Image]:
    """``count`` generated originals, named ``scene-SEED``."""
    return {f"scene-{s}": scene(s) for s in range(first_seed, first_seed + count)}


def generated_packshots(count: int, first_seed: int = 1) -> dict[str, Image.Image]:
    """``count`` generated product shots on white, named ``packshot-SEED``."""
    return {f"packshot-{s}": packshot(s) for s in range(first_seed, first_seed + count)}


def other_shot(name: str, shot: int = 1) -> Image.Image:
    """Another shot of a generated original (``scene-SEED`` or ``packshot-SEED``)."""
    family, seed = name.rsplit("-", 1)
    return (scene if family == "scene" else packshot)(int(seed), shot=shot)


# --- the edits ------------------------------------------------------------------------------


def resized(factor: float) -> Callable[[Image.Image], Image.Image]:
    def edit(im: Image.Image) -> Image.Image:
        return im.resize((max(1, round(im.width * factor)), max(1, round(im.height * factor))), Image.LANCZOS)

    return edit


def cropped(fraction: float, anchor: str) -> Callable[[Image.Image], Image.Image]:
    """Keep ``fraction`` of each side, at ``anchor`` (``centre``, ``top-left``, ``bottom-right``...)."""

    def edit(im: Image.Image) -> Image.Image:
        w, h = round(im.width * fraction), round(im.height * fraction)
        x = {"left": 0, "right": im.width - w}.get(anchor.split("-")[-1], (im.width - w) // 2)
        y = {"top": 0, "bottom": im.height - h}.get(anchor.split("-")[0], (im.height - h) // 2)
        return im.crop((x, y, x + w, y + h))

    return edit


def jpeg(quality: int) -> Callable[[Image.Image], Image.Image]:
    def edit(im: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        im.save(buffer, "JPEG", quality=quality)
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")

    return edit


def brightness(factor: float) -> Callable[[Image.Image], Image.Image]:
    def edit(im: Image.Image) -> Image.Image:
        return ImageEnhance.Brightness(im).enhance(factor)

    return edit


def watermark(text: str = "© ACME Studio 2024") -> Callable[[Image.Image], Image.Image]:
    """A semi-transparent white text across the lower third, a tenth of the height tall."""

    def edit(im: Image.Image) -> Image.Image:
        layer = Image.new("RGBA", im.size, (0, 0, 0, 0))
        font = ImageFont.load_default(size=max(10, im.height // 10))
        where = (im.width // 12, im.height * 2 // 3)
        draw = ImageDraw.Draw(layer)
        draw.text(
            where, text, font=font, fill=(255, 255, 255, 170), stroke_width=1, stroke_fill=(0, 0, 0, 120)
        )
        return Image.alpha_composite(im.convert("RGBA"), layer).convert("RGB")

    return edit


def combined(*edits: Callable[[Image.Image], Image.Image]) -> Callable[[Image.Image], Image.Image]:
    def edit(im: Image.Image) -> Image.Image:
        for one in edits:
            im = one(im)
        return im

    return edit


VARIANTS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "half": resized(0.5),
    "quarter": resized(0.25),
    "larger": resized(1.5),
    "crop90-centre": cropped(0.9, "centre"),
    "crop90-top-left": cropped(0.9, "top-left"),
    "crop90-bottom-right": cropped(0.9, "bottom-right"),
    "crop90-top-right": cropped(0.9, "top-right"),
    "jpeg30": jpeg(30),
    "brighter15": brightness(1.15),
    "darker15": brightness(0.85),
    "watermark": watermark(),
    "half-jpeg30-watermark": combined(resized(0.5), jpeg(30), watermark()),
}
"""Every edit of the set: an original and each of its variants are near-duplicates."""


def variants_of(image: Image.Image) -> dict[str, Image.Image]:
    """Every variant of one original, by edit name."""
    return {name: edit(image) for name, edit in VARIANTS.items()}
