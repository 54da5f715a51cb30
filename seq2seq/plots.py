"""Attention heatmaps, for TensorBoard and for `translate.py --attention out.png`."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import font_manager  # noqa: E402

if TYPE_CHECKING:
    from seq2seq.translator import Translation

# Without a Devanagari font the labels show boxes; the plot is still right, so no warning per glyph
warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)

# Fonts with Devanagari glyphs, tried first where installed (e.g. Debian's fonts-noto-core)
DEVANAGARI_FONTS = ("Noto Sans Devanagari", "Lohit Devanagari", "Nirmala UI", "Mangal", "Kohinoor Devanagari")


def _font_family() -> list[str]:
    installed = {font.name for font in font_manager.fontManager.ttflist}
    return [name for name in DEVANAGARI_FONTS if name in installed] + ["DejaVu Sans"]


def attention_figure(translation: Translation) -> matplotlib.figure.Figure:
    """Rows: output pieces (then EOS); columns: source pieces (then EOS)."""
    weights = translation.attention.numpy()
    rows = translation.pieces + ["</s>"]
    columns = translation.source_pieces + ["</s>"]
    figure, axes = plt.subplots(figsize=(max(4.0, 0.45 * len(columns) + 2), max(3.0, 0.4 * len(rows) + 1.5)))
    image = axes.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    family = _font_family()
    axes.set_xticks(range(len(columns)), columns, rotation=90, family=family)
    axes.set_yticks(range(len(rows)), rows, family=family)
    axes.set_xlabel("source")
    axes.set_ylabel("output")
    figure.colorbar(image, ax=axes)
    figure.tight_layout()
    return figure


def save_attention(translation: Translation, path: Path) -> None:
    figure = attention_figure(translation)
    figure.savefig(path, dpi=120)
    plt.close(figure)
