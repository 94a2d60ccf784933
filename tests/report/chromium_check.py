"""Open an HTML file in headless Chromium and report what the page saw: its images and any errors.

A copy of the page gets two small inline scripts: one at the top of <head> records script and resource errors
and console.error/warn calls, one at the end of <body> writes, once the page has loaded, every image's decoded
size and on-screen width into the DOM as JSON. `--dump-dom` prints that DOM; `--enable-logging=stderr` puts
every console message on stderr, where any line is counted as an error (the report itself has no scripts).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.waiting import HANG_S

BINARIES = ("chromium", "chromium-browser", "google-chrome")
RESULT_ID = "paretoserve-page-check"
HEAD_HOOK = """<script>
window.__pageErrors = [];
window.addEventListener("error", e => window.__pageErrors.push(
  e.message || ("failed to load " + ((e.target && (e.target.src || e.target.href)) || "a resource"))), true);
for (const level of ["error", "warn"]) {
  const original = console[level];
  console[level] = (...args) => { window.__pageErrors.push(level + ": " + args.join(" ")); original(...args); };
}
</script>"""
BODY_CHECK = """<script>
window.addEventListener("load", () => {
  const images = [...document.images].map(i => ({complete: i.complete, naturalWidth: i.naturalWidth,
    naturalHeight: i.naturalHeight, shownWidth: i.getBoundingClientRect().width}));
  const out = document.createElement("pre");
  out.id = "%s";
  out.textContent = JSON.stringify({images: images, errors: window.__pageErrors});
  document.body.appendChild(out);
});
</script>""" % RESULT_ID


@dataclass(frozen=True)
class PageCheck:
    images: list[dict]  # complete, naturalWidth, naturalHeight, shownWidth (CSS pixels)
    page_errors: list[str]  # errors the page itself saw
    console_lines: list[str]  # console messages Chromium logged


def find_chromium() -> str | None:
    return next((path for path in map(shutil.which, BINARIES) if path), None)


CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (Debian: apt-get install "
                                                              "chromium; .ci/run installs it)")


def check_page(html_path: Path, chromium: str, timeout_s: float = HANG_S) -> PageCheck:
    """Load a copy of `html_path` (with the two check scripts) in headless Chromium and read the results."""
    html = html_path.read_text(encoding="utf-8")
    html = html.replace("<head>", "<head>\n" + HEAD_HOOK, 1).replace("</body>", BODY_CHECK + "\n</body>", 1)
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(html, encoding="utf-8")
        done = subprocess.run(
            [chromium, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--disable-extensions",
             "--disable-dev-shm-usage", f"--user-data-dir={tmp}/profile", "--window-size=1280,2000",
             "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=timeout_s)
    found = re.search(rf'<pre id="{RESULT_ID}">(.*?)</pre>', done.stdout, re.S)
    if not found:
        raise AssertionError(f"chromium did not run the check (exit {done.returncode}): {done.stderr[-2000:]}")
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
                        .replace("&amp;", "&"))
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return PageCheck(result["images"], result["errors"], console)
