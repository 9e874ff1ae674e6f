"""Draw the PNG icons of the web app manifest (the SVG is the source of truth for shapes).

Run from the repository root: `.venv/bin/python ui/scripts/make_icons.py`. The PNGs are
committed, so neither `make run` nor the tests need to run this.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parent.parent / "static" / "icons"
BLUE = (29, 79, 145, 255)
TEAL = (56, 194, 168, 255)
WHITE = (255, 255, 255, 255)


def draw(size: int, *, maskable: bool) -> Image.Image:
    scale = 4  # draw large, then downsample for smooth edges
    n = size * scale
    img = Image.new("RGBA", (n, n), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    u = n / 512
    if maskable:  # full bleed: the platform applies its own mask
        d.rectangle((0, 0, n, n), fill=BLUE)
        inset, k = 0.1 * n, 0.8
    else:
        d.rounded_rectangle((0, 0, n - 1, n - 1), radius=112 * u, fill=BLUE)
        inset, k = 0.0, 1.0

    def p(x: float) -> float:
        return inset + x * u * k

    d.rectangle((p(216), p(120), p(296), p(392)), fill=WHITE)
    d.rectangle((p(120), p(216), p(392), p(296)), fill=WHITE)
    r = 44 * u * k
    d.ellipse((p(392) - r, p(392) - r, p(392) + r, p(392) + r), fill=TEAL)
    return img.resize((size, size), Image.Resampling.LANCZOS)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for size in (192, 512):
        draw(size, maskable=False).save(OUT / f"icon-{size}.png", optimize=True)
    draw(512, maskable=True).save(OUT / "maskable-512.png", optimize=True)


if __name__ == "__main__":
    main()
