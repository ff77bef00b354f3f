"""Render the example set of "your own digits": data/own-digits/<digit>/<font>.png.

A fresh clone needs digits to score as the ``own`` variant before anyone photographs their
handwriting, and they must be the same bytes everywhere: so they are typeset, not drawn. Each
digit 0-9 in each font that matplotlib ships (DejaVu, STIX and Computer Modern, pinned with
matplotlib in requirements.lock), dark ink on light paper at 64×64 like a scan, through
Pillow (also pinned). The PNGs are committed; rerun this only to change the set:

    python docs/example_digits.py data/own-digits
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib
from PIL import Image, ImageDraw, ImageFont

FONTS = [  # regular, bold and slanted faces of the three families matplotlib ships
    "DejaVuSans",
    "DejaVuSans-Bold",
    "DejaVuSans-Oblique",
    "DejaVuSans-BoldOblique",
    "DejaVuSerif",
    "DejaVuSerif-Bold",
    "DejaVuSerif-Italic",
    "DejaVuSerif-BoldItalic",
    "DejaVuSansMono",
    "DejaVuSansMono-Bold",
    "STIXGeneral",
    "STIXGeneralBol",
    "STIXGeneralItalic",
    "STIXGeneralBolIta",
    "cmr10",
    "cmss10",
    "cmtt10",
    "cmb10",
]
SIDE, PAPER, INK = 64, 235, 30  # pixels; a light gray page, near-black ink


def render(folder: Path) -> int:
    """Write every digit in every font under ``folder``; returns how many images."""
    fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    for digit in range(10):
        (folder / str(digit)).mkdir(parents=True, exist_ok=True)
        for name in FONTS:
            font = ImageFont.truetype(str(fonts / f"{name}.ttf"), size=44)
            image = Image.new("L", (SIDE, SIDE), PAPER)
            ImageDraw.Draw(image).text(
                (SIDE / 2, SIDE / 2), str(digit), fill=INK, font=font, anchor="mm"
            )
            image.save(folder / str(digit) / f"{name}.png", optimize=True)
    return 10 * len(FONTS)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    print(f"wrote {render(parser.parse_args().folder)} images")
