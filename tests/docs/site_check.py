"""Open a page of the built site in headless Chromium from file://, as a reader opens the site from disk, and
read back what a script added to it saw: the report's page check (tests/report/chromium_check.py), or a search.

The copy of the page with the script sits beside the original: Material resolves its search index and worker
against the page's own location. `--virtual-time-budget` lets the page's timers run before `--dump-dom` prints
the DOM, and no host name resolves, so nothing can come from the network.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.report.chromium_check import BODY_CHECK, HEAD_HOOK, RESULT_ID, PageCheck
from tests.waiting import HANG_S

SEARCH_ID = "paretoserve-search-check"
POLLS = 300  # tries of 100 ms (virtual time) each; the search index loads within a few
SEARCH = """<script>
window.__searchErrors = [];
window.addEventListener("error", e => window.__searchErrors.push(
  e.message || ("failed to load " + ((e.target && (e.target.src || e.target.href)) || "a resource"))), true);
window.addEventListener("load", () => {
  const input = document.querySelector("[data-md-component=search-query]");
  let polls = 0;
  const poll = () => {
    const links = [...document.querySelectorAll(".md-search-result__item a")].map(a => a.getAttribute("href"));
    if (links.length || !input || ++polls > %d) {
      const out = document.createElement("pre");
      out.id = "%s";
      out.textContent = JSON.stringify({links: links, errors: window.__searchErrors, box: !!input});
      document.body.appendChild(out);
      return;
    }
    input.focus();  // typed again until the index has loaded and the results are listed
    input.value = %s;
    input.dispatchEvent(new Event("input", {bubbles: true}));
    input.dispatchEvent(new KeyboardEvent("keyup", {bubbles: true}));
    setTimeout(poll, 100);
  };
  poll();
});
</script>"""


@dataclass(frozen=True)
class SearchCheck:
    links: list[str]  # the results' hrefs, as the page lists them
    page_errors: list[str]  # errors the page saw (a script or resource that failed to load, an exception)
    box: bool  # the page has a search box


def check_site_page(page: Path, chromium: str) -> PageCheck:
    """The report's page check (errors, console messages, images) on a page of the built site."""
    stdout, stderr = _open(page, HEAD_HOOK, BODY_CHECK, chromium)
    result = _result(stdout, stderr, RESULT_ID)
    console = [line for line in stderr.splitlines() if ":CONSOLE" in line]
    return PageCheck(result["images"], result["errors"], console)


def search(page: Path, query: str, chromium: str) -> SearchCheck:
    """Search the site `page` belongs to for `query`, from that page."""
    stdout, stderr = _open(page, "", SEARCH % (POLLS, SEARCH_ID, json.dumps(query)), chromium)
    result = _result(stdout, stderr, SEARCH_ID)
    return SearchCheck(result["links"], result["errors"], result["box"])


def _open(page: Path, head: str, body: str, chromium: str) -> tuple[str, str]:
    """Chromium's DOM dump and log of a copy of `page` beside it, with `head` and `body` added."""
    html = page.read_text(encoding="utf-8")
    html = html.replace("<head>", "<head>\n" + head, 1).replace("</body>", body + "\n</body>", 1)
    copy = page.with_name(f".check-{page.name}")
    copy.write_text(html, encoding="utf-8")
    try:
        with tempfile.TemporaryDirectory() as profile:
            done = subprocess.run(
                [chromium, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--disable-extensions",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1280,2000",
                 f"--virtual-time-budget={POLLS * 200}", "--host-resolver-rules=MAP * ~NOTFOUND",
                 "--enable-logging=stderr", "--v=0", "--dump-dom", copy.as_uri()],
                capture_output=True, text=True, timeout=HANG_S)
    finally:
        copy.unlink()
    return done.stdout, f"(exit {done.returncode}) {done.stderr}"


def _result(stdout: str, stderr: str, element_id: str) -> dict:
    found = re.search(rf'<pre id="{element_id}">(.*?)</pre>', stdout, re.S)
    if not found:
        raise AssertionError(f"chromium did not run the check {stderr[-2000:]}")
    return json.loads(found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
                      .replace("&amp;", "&"))
