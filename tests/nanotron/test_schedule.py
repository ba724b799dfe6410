"""nanotron's learning rate per step (lr_at) and its plot."""

from __future__ import annotations

import pytest

from ai_filters.nanotron import lr_at, plot_schedule
from tests.nanotron.helpers import wsd


def test_schedule_warmup_stable_decay():
    config = wsd()
    expected = {0: 0.0, 5: 5e-4, 10: 1e-3, 11: 1e-3, 500: 1e-3, 749: 1e-3, 750: 1e-3}
    expected |= {800: 8.2e-4, 875: 5.5e-4, 999: 1e-4 + 9e-4 / 250, 1000: 1e-4, 1200: 1e-4}
    for step, lr in expected.items():  # float64 formula against decimal values
        assert lr_at(step, config) == pytest.approx(lr, rel=1e-9, abs=1e-15), step


@pytest.mark.parametrize(
    ("style", "at_800"),
    [
        ("linear", 1e-4 + 9e-4 * 0.8),
        ("cosine", 1e-4 + 9e-4 * 0.9045084972),
        ("1-sqrt", 1e-4 + 9e-4 * 0.5527864045),
    ],
)
def test_decay_styles(style, at_800):
    config = wsd(style)
    assert lr_at(800, config) == pytest.approx(at_800, rel=1e-8)  # constants given to 10 digits
    assert lr_at(750, config) == pytest.approx(1e-3, rel=1e-12)  # float64: last-bit rounding
    assert lr_at(1000, config) == pytest.approx(1e-4, rel=1e-12)


def test_schedule_plot(tmp_path):
    png = plot_schedule(wsd("1-sqrt"), tmp_path / "lr.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
