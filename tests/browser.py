"""Headless Chromium for the HTML checks (tests/test_browser.py, examples/html_screenshots.py).

Debian's `chromium`, driven through the DevTools protocol by playwright, with a fresh empty profile
and every background service off. Pages are opened from their files; every request the page makes
is recorded and any that is not a file under the page's folder or a data: URI is aborted, so a
page that tries to reach the network fails the check instead of fetching.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from PIL import Image

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1200, "height": 900}

# Loads every lazy picture, then reports the pictures that did not decode.
BROKEN_IMAGES = """async () => {
  const images = Array.from(document.images);
  images.forEach(i => { i.loading = "eager"; });
  await Promise.all(images.map(i => i.complete ? null : new Promise(done => { i.addEventListener("load", done); i.addEventListener("error", done); })));
  return images.filter(i => i.naturalWidth === 0).map(i => i.getAttribute("src").slice(0, 80));
}"""


def chromium() -> str | None:
    return shutil.which("chromium")


@dataclass
class Visit:
    """A page opened in the browser, with what it said and asked for."""

    page: object  # playwright.sync_api.Page
    folder: Path
    console: list[str] = field(default_factory=list)  # console errors and uncaught exceptions
    requests: list[str] = field(default_factory=list)  # every URL requested
    dialogs: list[str] = field(default_factory=list)  # alert(), confirm(), prompt(): a script ran that the page did not bring

    def outside(self) -> list[str]:
        """Requests for anything but a file in the page's folder (or below it) or a data: URI."""
        inside = self.folder.resolve().as_uri() + "/"
        return [url for url in self.requests if not (url.startswith(inside) or url.startswith("data:"))]

    def problems(self) -> list[str]:
        """Console errors, dialogs, broken pictures, requests outside the folder, a blank page: [] when clean."""
        found = [f"console: {line}" for line in self.console] + [f"dialog: {text}" for text in self.dialogs]
        found += [f"broken image: {src}" for src in self.page.evaluate(BROKEN_IMAGES)]
        found += [f"request outside the page's folder: {url}" for url in self.outside()]
        text = self.page.evaluate("document.body ? document.body.innerText.trim().length : 0")
        if text < 40:
            found.append(f"blank page: {text} characters of text")
        low, high = Image.open(io.BytesIO(self.page.screenshot())).convert("L").getextrema()
        if high - low < 64:
            found.append(f"blank page: the screenshot's grey levels span only {low}..{high}")
        return found


@contextmanager
def browser(viewport: dict | None = None) -> Iterator[object]:
    """A playwright BrowserContext on Debian's chromium: offline, fresh profile, closed afterwards."""
    from playwright.sync_api import sync_playwright

    path = chromium()
    if path is None:
        raise RuntimeError("chromium is not installed (Debian: apt-get install chromium)")
    with sync_playwright() as driver, tempfile.TemporaryDirectory(prefix="smugir-chromium-") as profile:
        context = driver.chromium.launch_persistent_context(profile, executable_path=path, headless=True, args=FLAGS,
                                                            viewport=viewport or VIEWPORT, service_workers="block")
        try:
            yield context
        finally:
            context.close()


def visit(context, path: str | Path) -> Visit:
    """Open `path` (an HTML file) in a new tab and wait until it has loaded."""
    path = Path(path).resolve()
    page = context.new_page()
    seen = Visit(page, path.parent)
    page.on("console", lambda message: seen.console.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: seen.console.append(f"uncaught {error}"))
    page.on("request", lambda request: seen.requests.append(request.url))
    page.on("dialog", lambda dialog: (seen.dialogs.append(dialog.message), dialog.dismiss()))
    page.route(lambda url: not url.startswith(("file:", "data:")), lambda route: route.abort())
    page.goto(path.as_uri(), wait_until="load")
    return seen
