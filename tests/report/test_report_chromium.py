"""The report opened in headless Chromium: it loads without errors and every plot is decoded and shown."""

from __future__ import annotations

import pytest

from tests.report.chromium_check import CHROMIUM, check_page, needs_chromium

pytestmark = pytest.mark.integration


@needs_chromium
def test_report_loads_without_errors_and_shows_every_plot(full_report):
    check = check_page(full_report.html, CHROMIUM)
    assert check.page_errors == [] and check.console_lines == []
    assert len(check.images) == len(full_report.plots) == 6
    for image in check.images:
        assert image["complete"] and image["naturalWidth"] > 0 and image["naturalHeight"] > 0, image
        assert image["shownWidth"] > 100, image  # laid out on the page, not collapsed


@needs_chromium
def test_the_check_sees_a_broken_image_and_a_console_error(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"><title>t</title></head><body>'
                    '<img src="data:image/png;base64,AAAA" alt="broken">'
                    '<script>console.error("deliberate");</script></body></html>')
    check = check_page(page, CHROMIUM)
    assert check.images[0]["naturalWidth"] == 0
    assert any("deliberate" in e for e in check.page_errors) and any("deliberate" in c for c in check.console_lines)
    assert any("failed to load" in e for e in check.page_errors)
