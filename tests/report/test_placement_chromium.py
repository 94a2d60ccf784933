"""The page of a placement opened in headless Chromium: it loads without errors and every plot is decoded and
shown."""

from __future__ import annotations

import pytest

from tests.report.chromium_check import CHROMIUM, check_page, needs_chromium

pytestmark = pytest.mark.integration


@needs_chromium
def test_the_placement_page_loads_without_errors_and_shows_every_plot(placement_page):
    check = check_page(placement_page.html, CHROMIUM)
    assert check.page_errors == [] and check.console_lines == []
    # the memory map, the mix throughput and one curve per model, each decoded and laid out
    assert len(check.images) == len(placement_page.plots) == 4
    for image in check.images:
        assert image["complete"] and image["naturalWidth"] > 0 and image["naturalHeight"] > 0, image
        assert image["shownWidth"] > 100, image
