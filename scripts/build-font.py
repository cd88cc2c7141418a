"""Build the web chat's vendored Chinese font: a subset of Noto Sans CJK SC as WOFF2.

The chat page must show Chinese on phones and intranet PCs with no Chinese font
(and no internet to fetch one), so it ships its own. The whole font is 16 MB; this
subset holds the 3,755 characters of GB 2312 level 1 (what everyday text uses), every
character of the bot's message catalogue, the training data's community names and
examples, the page itself, ASCII and Chinese punctuation: about 1.3 MB.

Reproduce (Debian's font, fontTools with Brotli for WOFF2):

    apt-get install fonts-noto-cjk
    .venv/bin/pip install fonttools brotli
    .venv/bin/python scripts/build-font.py

Noto Sans CJK is under the SIL Open Font License 1.1 (bots/static/assets/fonts/OFL.txt).
"""

from __future__ import annotations

import sys
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTCollection

ROOT = Path(__file__).resolve().parent.parent
SOURCE = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
TARGET = ROOT / "bots" / "static" / "assets" / "fonts" / "NotoSansSC-Yimen.woff2"
FAMILY = "Noto Sans CJK SC"


def gb2312_level1() -> str:
    chars = []
    for high in range(0xB0, 0xD8):
        for low in range(0xA1, 0xFF):
            try:
                chars.append(bytes([high, low]).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    return "".join(chars)


def text_of_project() -> str:
    paths = [
        *(ROOT / "handlers" / "locale").glob("*.yml"),
        *(ROOT / "nlu" / "data").glob("*.yml"),
        ROOT / "bots" / "static" / "chat.html",
        ROOT / "bots" / "static" / "assets" / "chat.js",
    ]
    return "".join(path.read_text(encoding="utf-8") for path in paths)


def main() -> int:
    collection = TTCollection(str(SOURCE))
    index = next(
        i for i, font in enumerate(collection.fonts) if font["name"].getDebugName(1) == FAMILY
    )
    ascii_ = "".join(chr(c) for c in range(0x20, 0x7F))
    punctuation = "，。、；：？！“”‘’（）《》〈〉【】「」『』—…·～￥％＋－×÷＝　"
    wanted = set(ascii_ + punctuation + gb2312_level1() + text_of_project())
    wanted |= {chr(c) for c in range(0xFF01, 0xFF5F)}  # full-width forms
    options = subset.Options()
    options.flavor = "woff2"
    options.font_number = index
    options.layout_features = ["*"]
    options.name_IDs = ["*"]
    options.notdef_outline = True
    font = subset.load_font(str(SOURCE), options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(text="".join(sorted(wanted)))
    subsetter.subset(font)
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    subset.save_font(font, str(TARGET), options)
    print(f"{TARGET.relative_to(ROOT)}: {len(wanted)} characters, {TARGET.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
