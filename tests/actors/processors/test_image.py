"""The image processor: facts, EXIF orientation, the thumbnail and refusals."""

from __future__ import annotations

import hashlib
import random
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from actors.errors import BadFile
from actors.processors.base import FileInfo
from actors.processors.image import MAX_PIXELS, THUMBNAIL, ImageProcessor
from schemas.results import ImageResult

MIMES = {".png": "image/png", ".jpg": "image/jpeg", ".webp": "image/webp", ".gif": "image/gif"}


def info_of(path: Path) -> FileInfo:
    data = path.read_bytes()
    return FileInfo(
        filename=path.name,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        mime=MIMES[path.suffix],
    )


def process(path: Path) -> tuple[ImageResult, Path]:
    out = path.parent / "out"
    out.mkdir()
    return ImageProcessor().run(path, info_of(path), out), out


def thumbnail_of(out: Path) -> Image.Image:
    """The thumbnail artifact, checked to be the only one and a WebP."""
    assert [p.name for p in out.iterdir()] == [THUMBNAIL]
    thumb = Image.open(out / THUMBNAIL)
    assert thumb.format == "WEBP"
    return thumb


def refuse(path: Path) -> str:
    """The reason `path` is refused; no artifact may be left behind."""
    out = path.parent / "out"
    out.mkdir()
    with pytest.raises(BadFile) as caught:
        ImageProcessor().run(path, info_of(path), out)
    assert list(out.iterdir()) == []
    return caught.value.reason


def png_header(width: int, height: int) -> bytes:
    """A PNG claiming `width`x`height` 1-bit pixels, with a token IDAT: enough to be opened."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00"))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("mime", "accepted"),
    [
        ("image/png", True),
        ("image/jpeg", True),
        ("image/webp", True),
        ("image/gif", True),
        ("image/tiff", False),
        ("text/plain", False),
    ],
)
def test_accepts(mime: str, accepted: bool) -> None:
    assert ImageProcessor().accepts(mime) is accepted


def test_png_rgba(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.new("RGBA", (300, 150), (255, 0, 0, 128)).save(path)
    result, out = process(path)
    assert result == ImageResult(
        width=300,
        height=150,
        format="PNG",
        mode="RGBA",
        frames=1,
        orientation=1,
        exif={},
        thumbnail=THUMBNAIL,
    )
    thumb = thumbnail_of(out)
    assert thumb.size == (256, 128)
    assert thumb.mode == "RGBA"


def test_jpeg_exif_orientation(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    img = Image.new("RGB", (400, 200), "blue")
    img.paste((255, 0, 0), (0, 0, 200, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display.
    exif[0x010F] = "Acme"  # Make
    exif[0x0110] = "Camera " + "x" * 300  # Model, over the length limit
    img.save(path, exif=exif, quality=95)

    result, out = process(path)
    assert (result.width, result.height) == (200, 400)
    assert result.format == "JPEG"
    assert result.mode == "RGB"
    assert result.orientation == 6
    assert result.exif == {
        "Make": "Acme",
        "Model": ("Camera " + "x" * 300)[:200],
        "Orientation": "6",
    }
    thumb = thumbnail_of(out).convert("RGB")
    assert thumb.size == (128, 256)
    # Turned clockwise, the red left half of the stored image is the top of the shown one.
    top, bottom = thumb.getpixel((64, 32)), thumb.getpixel((64, 224))
    assert isinstance(top, tuple)
    assert isinstance(bottom, tuple)
    assert top[0] > 200 > top[2]
    assert bottom[2] > 200 > bottom[0]


def test_large_jpeg(tmp_path: Path) -> None:
    # Large enough for a reduced-scale JPEG decode.
    path = tmp_path / "a.jpg"
    Image.new("L", (3000, 1500), 90).save(path)
    result, out = process(path)
    assert (result.width, result.height, result.mode) == (3000, 1500, "L")
    assert thumbnail_of(out).size == (256, 128)


def test_webp(tmp_path: Path) -> None:
    path = tmp_path / "a.webp"
    Image.new("RGB", (512, 512), "green").save(path)
    result, out = process(path)
    assert (result.width, result.height, result.format, result.frames) == (512, 512, "WEBP", 1)
    assert thumbnail_of(out).size == (256, 256)


def test_animated_gif(tmp_path: Path) -> None:
    path = tmp_path / "a.gif"
    # Different colours: Pillow merges identical consecutive frames when saving.
    frames = [Image.new("RGB", (120, 90), color) for color in ("red", "green", "blue")]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    result, out = process(path)
    assert (result.width, result.height, result.format, result.frames) == (120, 90, "GIF", 3)
    assert result.mode == "P"
    thumb = thumbnail_of(out)
    assert thumb.size == (120, 90)
    assert getattr(thumb, "n_frames", 1) == 1
    pixel = thumb.convert("RGB").getpixel((60, 45))
    assert isinstance(pixel, tuple)
    assert pixel[0] > 200 > pixel[1]


def test_small_image_is_not_upscaled(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.new("RGB", (10, 10), "white").save(path)
    result, out = process(path)
    assert (result.width, result.height) == (10, 10)
    assert thumbnail_of(out).size == (10, 10)


@pytest.mark.parametrize(("transparent", "thumb_mode"), [(False, "RGB"), (True, "RGBA")])
def test_palette_png(tmp_path: Path, transparent: bool, thumb_mode: str) -> None:
    path = tmp_path / "a.png"
    img = Image.new("P", (64, 32), 1)
    img.putpalette([0, 0, 0, 255, 255, 0] + [0] * 762)
    # Some pixels must use the transparent index: WebP drops an alpha channel that is all opaque.
    img.paste(0, (0, 0, 32, 32))
    img.save(path, **({"transparency": 0} if transparent else {}))
    result, out = process(path)
    assert (result.width, result.height, result.mode) == (64, 32, "P")
    thumb = thumbnail_of(out)
    assert thumb.size == (64, 32)
    assert thumb.mode == thumb_mode


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.new("I;16", (40, 20), 32896).save(path)
    result, out = process(path)
    assert result.mode == "I;16"
    pixel = thumbnail_of(out).convert("RGB").getpixel((20, 10))
    assert isinstance(pixel, tuple)
    assert 120 <= pixel[0] <= 136


def test_truncated_png(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    # Noise, so that the pixel data is large and cutting it loses most of the rows.
    Image.frombytes("RGB", (200, 200), random.Random(0).randbytes(200 * 200 * 3)).save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert refuse(path).startswith("not a readable image: ")


@pytest.mark.parametrize(
    "content", [random.Random(1).randbytes(4096), b""], ids=["random", "empty"]
)
def test_not_an_image(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(content)
    assert refuse(path).startswith("not a readable image: ")


def test_jpeg_named_png_is_read_by_content(tmp_path: Path) -> None:
    # Only the accepted formats are tried, but any of them whatever the name says.
    path = tmp_path / "a.png"
    Image.new("RGB", (20, 10)).save(path, format="JPEG")
    result, _ = process(path)
    assert result.format == "JPEG"


def test_decompression_bomb(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    # 60 MP, but 1-bit and uniform: cheap to make, a small file.
    Image.new("1", (10000, 6000)).save(path)
    assert path.stat().st_size < 100_000
    reason = refuse(path)
    assert reason == (f"image too large: 10000x6000 pixels exceeds the limit of {MAX_PIXELS:,}")
    assert "50,000,000" in reason


@pytest.mark.parametrize(
    "size",
    [(12000, 10000), (20000, 20000)],
    ids=["pillow-warns", "pillow-refuses"],
)
def test_bomb_past_pillow_limits(tmp_path: Path, size: tuple[int, int]) -> None:
    # Pillow itself objects while opening these, before the processor's own check.
    path = tmp_path / "a.png"
    path.write_bytes(png_header(*size))
    reason = refuse(path)
    assert reason.startswith("image too large: exceeds the limit of 50,000,000 pixels")
