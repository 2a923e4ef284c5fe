"""Images: dimensions, format and a few EXIF facts, plus a WebP thumbnail artifact."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path
from typing import ClassVar, cast

from PIL import ExifTags, Image, ImageOps

from actors.errors import BadFile
from actors.processors.base import FileInfo
from schemas.results import ImageResult

MAX_PIXELS = 50_000_000
"""Larger images are refused before their pixels are decoded."""

THUMBNAIL = "thumbnail.webp"
THUMBNAIL_SIZE = (256, 256)
THUMBNAIL_QUALITY = 80

EXIF_TAGS = frozenset({"Make", "Model", "DateTime", "Software", "Orientation"})
EXIF_VALUE_LIMIT = 200

MIMES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
# Only the plugins for the accepted types may parse a file, whatever its bytes claim.
_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
# Pillow opens JPEGs carrying a multi-picture index (many camera files) as MPO.
_FORMAT_NAMES = {"MPO": "JPEG"}
# Orientations that swap width and height.
_TRANSPOSING = frozenset({5, 6, 7, 8})

# What Pillow raises on truncated or malformed input; UnidentifiedImageError is an OSError.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error)


class ImageProcessor:
    """Profiles PNG, JPEG, WebP and GIF images and writes a thumbnail of the first frame."""

    name: ClassVar[str] = "image"
    priority: ClassVar[int] = 100

    def accepts(self, mime: str) -> bool:
        return mime in MIMES

    def run(self, source: Path, info: FileInfo, out: Path) -> ImageResult:
        try:
            # Pillow only warns between its limit and twice that; as an error, the warning
            # stops such an image while it is opened. The check in _profile is the real guard:
            # MAX_PIXELS is lower, and catch_warnings is not thread-safe before Python 3.14.
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                result, thumbnail = _profile(source)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise BadFile(
                f"image too large: exceeds the limit of {MAX_PIXELS:,} pixels ({exc})"
            ) from exc
        except _DECODE_ERRORS as exc:
            raise BadFile(f"not a readable image: {exc}") from exc
        # Outside the try: failing to write the artifact is not the file's fault.
        thumbnail.save(out / THUMBNAIL, format="WEBP", quality=THUMBNAIL_QUALITY)
        return result


def _profile(source: Path) -> tuple[ImageResult, Image.Image]:
    """The result for `source` and its thumbnail, fully decoded in memory."""
    with Image.open(source, formats=_FORMATS) as img:
        width, height = img.size
        if width * height > MAX_PIXELS:
            raise BadFile(
                f"image too large: {width}x{height} pixels exceeds the limit of {MAX_PIXELS:,}"
            )
        exif = img.getexif()
        orientation = exif.get(ExifTags.Base.Orientation, 1)
        if not isinstance(orientation, int) or not 1 <= orientation <= 8:
            # exif_transpose ignores values it does not know, so nothing was applied.
            orientation = 1
        if orientation in _TRANSPOSING:
            width, height = height, width
        fmt = img.format or ""
        result = ImageResult(
            width=width,
            height=height,
            format=_FORMAT_NAMES.get(fmt, fmt),
            mode=img.mode,
            frames=getattr(img, "n_frames", 1),
            orientation=orientation,
            exif=_exif_strings(exif),
            thumbnail=THUMBNAIL,
        )
        # A JPEG can then decode at a reduced scale, still twice the thumbnail as thumbnail()
        # itself would ask; other formats ignore it. The first frame is the current one.
        img.draft(None, (THUMBNAIL_SIZE[0] * 2, THUMBNAIL_SIZE[1] * 2))
        thumbnail = _displayable(ImageOps.exif_transpose(img))
    thumbnail.thumbnail(THUMBNAIL_SIZE)
    return result, thumbnail


def _exif_strings(exif: Image.Exif) -> dict[str, str]:
    """The tags of `EXIF_TAGS` present in `exif`, as text."""
    found: dict[str, str] = {}
    for tag, value in exif.items():
        name = ExifTags.TAGS.get(tag)
        # Undecoded binary values are not readable, and may be large.
        if name not in EXIF_TAGS or isinstance(value, bytes):
            continue
        text = str(value).strip("\x00 ")
        if text:
            found[name] = text[:EXIF_VALUE_LIMIT]
    return found


def _displayable(img: Image.Image) -> Image.Image:
    """`img` as RGB, or RGBA when it has transparency: what WebP stores."""
    if img.mode in ("RGB", "RGBA"):
        return img
    if img.mode.startswith("I;16"):
        # A plain conversion clips 16-bit samples to 255, turning most pixels white.
        img = img.convert("I").point(lambda v: v / 257).convert("L")
    elif img.mode in ("I", "F"):
        # No nominal range: stretch whatever range the samples use (one band, one pair).
        low, high = cast("tuple[float, float]", img.getextrema())
        if high > low:
            scale = 255 / (high - low)
            img = img.point(lambda v: (v - low) * scale)
        img = img.convert("L")
    return img.convert("RGBA" if img.has_transparency_data else "RGB")
