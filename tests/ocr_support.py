"""Pictures with and without text for the OCR tests and benchmark (fixed seeds, no files needed).

- :func:`rendered_set`: phrases drawn with Pillow onto the real test photos at several sizes
  (every line at least 24 px high), colours, backgrounds (plain, a label box, a translucent
  band, an outline) and a 10 degree tilt, each with the phrase it carries.
- :func:`text_free_set`: the test photos that hold no legible text, with mirrored, cropped
  and re-lit variants.
- :func:`char_error_rate`: character-level Levenshtein distance over the reference length.

The font is Pillow's own scalable default (``ImageFont.load_default(size)``), so the pictures
are the same on every machine, with no system font needed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

PHOTOS = Path(__file__).parent / "data" / "photos"
# cameraman (a wristwatch), clock (numerals) and motorcycle (badges) carry real text.
TEXT_FREE = ("astronaut", "cat", "coffee", "hubble_deep_field", "rocket")
PHRASES = (
    "HARVEST MARKET",
    "25% off all shoes",
    "Spring Collection 2025",
    "Open daily 9-18",
    "Fresh roasted coffee",
    "SKU 48213-B",
    "Limited Edition",
    "Grand opening Saturday",
    "Summer Sale",
    "Made in Portugal",
    "FREE DELIVERY",
    "Exit B2",
)
SIZES = (36, 44, 60, 80)  # font sizes; the shortest line drawn is still >= 24 px high
COLOURS = ((255, 255, 255), (20, 20, 20), (250, 210, 40), (200, 30, 40), (30, 60, 200))
BACKGROUNDS = ("plain", "label", "band", "outline")
SEED = 13


@dataclass(frozen=True)
class TextPicture:
    """A photo with one phrase drawn on it.

    Attributes:
        image: The RGB picture.
        text: The phrase.
        box: ``(x0, y0, x1, y1)`` of the drawn phrase, as fractions of the picture's size.
        height: The drawn line's height in pixels (ink, before any tilt).
        name: Source photo, size, colour, background and angle, for messages.
    """

    image: Image.Image
    text: str
    box: tuple[float, float, float, float]
    height: int
    name: str


def photos(names: tuple[str, ...] | None = None) -> dict[str, Image.Image]:
    """The test photos as RGB images, by file stem."""
    out = {}
    for path in sorted(PHOTOS.glob("*.jpg")):
        if names is None or path.stem in names:
            with Image.open(path) as im:
                out[path.stem] = im.convert("RGB")
    return out


def _contrast(colour: tuple[int, int, int], region: Image.Image) -> tuple[int, int, int]:
    """``colour``, or black/white when it would vanish into the region behind it."""
    behind = float(np.asarray(ImageOps.grayscale(region)).mean())
    ink = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    if abs(ink - behind) >= 90:
        return colour
    return (15, 15, 15) if behind > 128 else (245, 245, 245)


def render(
    photo: Image.Image,
    text: str,
    *,
    size: int,
    colour: tuple[int, int, int],
    background: str,
    angle: float = 0.0,
    rng: random.Random,
    long_side: int = 1024,
) -> TextPicture:
    """Draw ``text`` on a copy of ``photo`` (scaled to ``long_side``) somewhere random."""
    scale = long_side / max(photo.size)
    base = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.Resampling.BICUBIC)
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = font.getbbox(text)
    pad = size // 4
    w, h = right - left + 2 * pad, bottom - top + 2 * pad
    x = rng.randint(8, max(8, base.width - w - 8))
    y = rng.randint(8, max(8, base.height - h - 8))
    region = base.crop((x, y, x + w, y + h))
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    if background == "label":
        fill = (250, 250, 245) if sum(colour) < 384 else (25, 25, 30)
        draw.rectangle((0, 0, w - 1, h - 1), fill=(*fill, 255))
        ink = colour
    elif background == "band":
        draw.rectangle((0, 0, w - 1, h - 1), fill=(0, 0, 0, 150))
        ink = colour if sum(colour) > 384 else (250, 250, 250)
    else:
        ink = _contrast(colour, region)
    stroke = max(2, size // 16) if background == "outline" else 0
    outline = (0, 0, 0) if sum(ink) > 384 else (255, 255, 255)
    draw.text(
        (pad - left, pad - top), text, font=font, fill=(*ink, 255), stroke_width=stroke, stroke_fill=outline
    )
    if angle:
        layer = layer.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    x, y = min(x, base.width - layer.width), min(y, base.height - layer.height)
    base.paste(layer, (x, y), layer)
    box = (x / base.width, y / base.height, (x + layer.width) / base.width, (y + layer.height) / base.height)
    name = f"{text!r} on {photo.info.get('stem', '?')} size {size} {background} angle {angle}"
    return TextPicture(base, text, box, bottom - top, name)


def rendered_set(count: int = 48) -> list[TextPicture]:
    """``count`` photos with a phrase each: every size, colour and background, a quarter tilted 10 degrees."""
    rng = random.Random(SEED)
    sources = photos()
    for stem, im in sources.items():
        im.info["stem"] = stem
    names = sorted(sources)
    out = []
    for i in range(count):
        out.append(
            render(
                sources[names[i % len(names)]],
                PHRASES[i % len(PHRASES)],
                size=SIZES[i % len(SIZES)],
                colour=COLOURS[i % len(COLOURS)],
                background=BACKGROUNDS[(i // len(SIZES)) % len(BACKGROUNDS)],
                angle=10.0 if i % 4 == 3 else 0.0,
                rng=rng,
            )
        )
    return out


def text_free_set() -> list[Image.Image]:
    """The text-free test photos, each as is, mirrored, and as four random crops with new light."""
    rng = random.Random(SEED)
    out = []
    for im in photos(TEXT_FREE).values():
        out += [im, ImageOps.mirror(im)]
        for _ in range(4):
            cw, ch = round(im.width * rng.uniform(0.5, 0.9)), round(im.height * rng.uniform(0.5, 0.9))
            x, y = rng.randint(0, im.width - cw), rng.randint(0, im.height - ch)
            crop = im.crop((x, y, x + cw, y + ch)).resize(
                (640, round(640 * ch / cw)), Image.Resampling.BICUBIC
            )
            out.append(ImageEnhance.Brightness(crop).enhance(rng.uniform(0.7, 1.3)))
    return out


def char_error_rate(reference: str, hypothesis: str) -> float:
    """Character error rate: Levenshtein distance over the reference length (whitespace-normalised)."""
    ref, hyp = " ".join(reference.split()), " ".join(hypothesis.split())
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        diagonal, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (r != h))
    return row[len(hyp)] / max(1, len(ref))


def overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Whether two ``(x0, y0, x1, y1)`` boxes intersect."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


SLIDE_TEXT = "Quarterly Results 2025"
SLIDE_START, SLIDE_END = 3.0, 6.0


def slide(text: str = SLIDE_TEXT, size: tuple[int, int] = (640, 360)) -> Image.Image:
    """A title slide: dark text on a light panel over a photo (not a plain card: keyframes skip those)."""
    base = photos(("rocket",))["rocket"].resize(size, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(base)
    w, h = size
    draw.rectangle((w // 12, h // 3, w - w // 12, 2 * h // 3), fill=(245, 245, 240))
    font = ImageFont.load_default(size=h // 10)
    left, top, right, bottom = font.getbbox(text)
    draw.text(
        ((w - (right - left)) // 2 - left, (h - (bottom - top)) // 2 - top),
        text,
        font=font,
        fill=(20, 20, 30),
    )
    return base


def slide_video(path: Path, size: tuple[int, int] = (640, 360)) -> Path:
    """An H.264 clip: 3 s of the cat, a text slide from 3 s to 6 s, 3 s of coffee (no text elsewhere)."""
    from media import make_clip

    pictures = photos(("cat", "coffee"))
    scenes = [
        (SLIDE_START, pictures["cat"]),
        (SLIDE_END - SLIDE_START, slide(size=size)),
        (3.0, pictures["coffee"]),
    ]
    return make_clip(path, scenes, size=size)
