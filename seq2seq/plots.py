"""Attention heatmaps, for TensorBoard and for `translate.py --attention out.png`.

matplotlib is imported inside the functions and figures are drawn on their own Agg canvas, so
importing this module neither loads matplotlib nor switches the process-wide backend.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from seq2seq.translator import Translation

DEVANAGARI_FAMILY = "Noto Sans Devanagari"
# Tried in order for each glyph: DejaVu (matplotlib's own) for Latin, "▁" and "</s>", then Noto for Devanagari
FONT_FAMILIES = ["DejaVu Sans", DEVANAGARI_FAMILY]


@cache
def register_devanagari_font() -> None:
    """Add the Noto Sans Devanagari file shipped by fontpkg-noto-sans-devanagari to matplotlib's fonts."""
    import fontpkg_noto_sans_devanagari
    from matplotlib import font_manager

    # the package keeps its font under files/, named after its variation axes: NotoSansDevanagari[wdth,wght].ttf
    for font_file in sorted((fontpkg_noto_sans_devanagari.ROOT / "files").glob("*.ttf")):
        font_manager.fontManager.addfont(str(font_file))


def attention_figure(translation: Translation) -> Figure:
    """Rows: output pieces (then EOS); columns: source pieces (then EOS)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    register_devanagari_font()
    weights = translation.attention.numpy()
    rows = translation.pieces + ["</s>"]
    columns = translation.source_pieces + ["</s>"]
    figure = Figure(figsize=(max(4.0, 0.45 * len(columns) + 2), max(3.0, 0.4 * len(rows) + 1.5)))
    FigureCanvasAgg(figure)  # attaches itself as figure.canvas: Agg for this figure only
    axes = figure.add_subplot()
    image = axes.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(len(columns)), columns, rotation=90, family=FONT_FAMILIES)
    axes.set_yticks(range(len(rows)), rows, family=FONT_FAMILIES)
    axes.set_xlabel("source")
    axes.set_ylabel("output")
    figure.colorbar(image, ax=axes)
    figure.tight_layout()
    return figure


def save_attention(translation: Translation, path: Path) -> None:
    attention_figure(translation).savefig(path, dpi=120)
