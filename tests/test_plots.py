"""Attention heatmaps: Hindi labels drawn with real glyphs, and no global matplotlib side effects."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch

from seq2seq.plots import DEVANAGARI_FAMILY, attention_figure, register_devanagari_font, save_attention
from seq2seq.translator import Translation

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ["▁Hello", ",", "▁how", "▁are", "▁you", "?"]
# conjuncts (स्ते, क्ष), a nukta form (क़), vowel signs on both sides of their consonant (कि, कै)
OUTPUT = ["▁नमस्ते", "▁आप", "▁कैसे", "▁हैं", "?", "▁क़िक्षा", "<unk>"]


def translation() -> Translation:
    scores = torch.randn(len(OUTPUT) + 1, len(SOURCE) + 1, generator=torch.Generator().manual_seed(0))
    return Translation("नमस्ते आप कैसे हैं?", -1.0, SOURCE, OUTPUT, scores.softmax(dim=1))


def glyph_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


def test_devanagari_and_latin_labels_have_every_glyph(tmp_path) -> None:
    # "always" goes in front of every filter, so a process-wide "ignore" cannot hide the warning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figure = attention_figure(translation())
        figure.canvas.draw()
        save_attention(translation(), tmp_path / "attention.png")
    assert glyph_warnings(caught) == []
    labels = [label.get_text() for label in figure.axes[0].get_xticklabels() + figure.axes[0].get_yticklabels()]
    assert labels == SOURCE + ["</s>"] + OUTPUT + ["</s>"]
    assert (tmp_path / "attention.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_the_glyph_check_does_see_missing_glyphs() -> None:
    """The test above means something: the same labels in matplotlib's default font do warn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure()
    FigureCanvasAgg(figure)
    figure.add_subplot().set_xticks(range(len(OUTPUT)), OUTPUT, family="DejaVu Sans")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figure.canvas.draw()
    assert any("DEVANAGARI" in message for message in glyph_warnings(caught))


def test_devanagari_family_resolves_to_the_packaged_font() -> None:
    import fontpkg_noto_sans_devanagari
    from matplotlib import font_manager

    register_devanagari_font()
    found = font_manager.fontManager.findfont(font_manager.FontProperties(family=DEVANAGARI_FAMILY),
                                              fallback_to_default=False)
    assert Path(found).parent == fontpkg_noto_sans_devanagari.ROOT / "files"


def test_importing_and_plotting_leave_matplotlib_global_state_alone(tmp_path) -> None:
    script = textwrap.dedent(f"""
        import sys
        import seq2seq.plots
        assert "matplotlib" not in sys.modules, "importing seq2seq.plots imported matplotlib"
        import matplotlib
        import torch
        from seq2seq.translator import Translation
        t = Translation("", 0.0, ["▁a"], ["▁क"], torch.full((2, 2), 0.5))
        seq2seq.plots.save_attention(t, {str(tmp_path / "a.png")!r})
        seq2seq.plots.attention_figure(t)
        assert "matplotlib.pyplot" not in sys.modules, "plotting imported pyplot"
        assert matplotlib.rcParams["backend"] == "template", matplotlib.rcParams["backend"]
    """)
    # an explicit backend, so that a switch to Agg shows (and reading it never auto-selects one)
    env = {**os.environ, "MPLBACKEND": "template"}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "a.png").is_file()


@pytest.mark.parametrize("rows,columns", [(0, 0), (1, 40)])
def test_empty_and_wide_translations_plot(rows, columns, tmp_path) -> None:
    pieces, source = ["▁है"] * rows, ["▁w"] * columns
    attention = torch.full((rows + 1, columns + 1), 1.0 / (columns + 1))
    save_attention(Translation("", 0.0, source, pieces, attention), tmp_path / "a.png")
    assert (tmp_path / "a.png").stat().st_size > 0
