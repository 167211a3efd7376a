"""What a reader sees: open built book pages in headless Chromium and list what is broken.

``PageChecker.check(rel)`` loads one page of a built HTML folder (served from 127.0.0.1 or opened
as file://), waits for MathJax and the widget manager, and returns a list of problems, each a
sentence naming the page and the culprit:

* console errors (Chromium log level SEVERE: failed loads, uncaught exceptions);
* any request that leaves the machine (Chrome's performance log: Network.requestWillBeSent);
* HTTP responses >= 400 for the page's own resources;
* math not typeset: a Sphinx ``.math`` element without a MathJax ``mjx-container``, a MathJax
  error (``mjx-merror``), or raw TeX in visible text (``$$``, ``\\(``, ``\\[``, ``\\begin{``, or
  ``$…$`` that is clearly TeX, e.g. ``$\\alpha$``, ``$x_i$``);
* an ``<img>`` that did not load (``naturalWidth == 0``);
* saved widget views (``application/vnd.jupyter.widget-view+json``) that were not rendered;
* an internal ``<a href>`` whose file or ``#anchor`` does not exist in the built folder;
* an output line cut off at the right edge: a ``<pre>`` in a cell's output area whose content is
  wider than its box (``scrollWidth > clientWidth``), measured after the page's CSS applies;
* machinery shown to readers: a cell tagged ``parameters`` or ``injected-parameters``;
* for notebook pages: the Colab link differs from the expected address.

One Chromium session (selenium + Debian's chromedriver) serves every page; ``serve`` runs a
``http.server`` thread on 127.0.0.1 for one HTML folder.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import json
import re
import shutil
import tempfile
import threading
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urldefrag, urlsplit

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
    "--hide-scrollbars",
)
# Schemes that never leave the machine.
LOCAL_SCHEMES = {"data", "blob", "about", "chrome", "devtools"}
# Chromium asks every http origin for /favicon.ico on its own; the book has none, which is fine.
BROWSER_OWN_REQUESTS = ("favicon.ico",)
# Delimiters MathJax should have consumed, and $…$ that is clearly TeX (not "$5 or $10").
RAW_TEX = re.compile(
    r"\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{"
    r"|\$[^$\n]{0,80}?(?:\\[A-Za-z]+|[\^_]\{)[^$\n]{0,80}?\$"  # $\alpha$, $\theta_{pre}$
    r"|\$[A-Za-z0-9]{1,3}[\^_][A-Za-z0-9]{1,3}\$"  # $x_i$, $x^2$ (but not "$MEDLIB_HOME or $PATH")
)
SCREENSHOT_MAX_HEIGHT = 4000  # px; the top of a long notebook page is enough to judge it

# Runs in the page after `load`: wait for MathJax and the widget manager, then collect facts.
_COLLECT_JS = r"""
const done = arguments[arguments.length - 1];
const sleep = ms => new Promise(r => setTimeout(r, ms));
(async () => {
  const t0 = Date.now();
  while (document.readyState !== 'complete') await sleep(50);
  for (const img of document.images) if (img.loading === 'lazy') img.loading = 'eager';
  const hasMathJax = !!document.querySelector('script[src*="mathjax"]');
  if (hasMathJax) {
    while (!(window.MathJax && MathJax.startup && MathJax.startup.promise) && Date.now() - t0 < 15000) await sleep(50);
    try { if (window.MathJax && MathJax.startup) await MathJax.startup.promise; } catch (e) {}
  }
  const viewSel = 'script[type="application/vnd.jupyter.widget-view+json"]';
  const views = document.querySelectorAll(viewSel).length;
  const rendered = () => Array.from(document.querySelectorAll('.widget-subarea'))
      .filter(el => el.querySelector('.jupyter-widgets, [class*="widget-"]')).length;
  // widgets render on window "load" through RequireJS; without it nothing will ever render
  while (views && window.require && rendered() < views && Date.now() - t0 < 20000) await sleep(100);
  await Promise.all(Array.from(document.images).map(img => img.complete ? null :
      new Promise(r => { img.addEventListener('load', r); img.addEventListener('error', r); setTimeout(r, 5000); })));
  // output text wider than its box is cut off (or hidden behind a scrollbar) at the right edge;
  // folded logs are opened for the measurement (a closed <details> has no width), then refolded
  const closed = Array.from(document.querySelectorAll('details:not([open])'));
  closed.forEach(el => { el.open = true; });
  const overflowing = Array.from(document.querySelectorAll('.cell_output pre'))
      .filter(el => el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1)
      .map(el => ({width: el.clientWidth, content: el.scrollWidth,
                   line: el.textContent.split('\n').reduce((a, b) => b.length > a.length ? b : a, '').slice(0, 60)}));
  closed.forEach(el => { el.open = false; });
  const math = Array.from(document.querySelectorAll('.math'));
  const visible = document.body.cloneNode(true);
  // raw TeX outside code and outside .math elements (those are reported as not typeset above)
  visible.querySelectorAll('pre, code, script, style, template, textarea, mjx-container, .highlight, .math')
      .forEach(el => el.remove());
  done({
    url: location.href,
    title: document.title,
    hasMathJax: hasMathJax,
    mathElements: math.length,
    mathUntypeset: math.filter(el => !el.querySelector('mjx-container'))
        .map(el => el.textContent.trim().slice(0, 60)),
    mathErrors: Array.from(document.querySelectorAll('mjx-merror'))
        .map(el => (el.getAttribute('data-mjx-error') || el.textContent).slice(0, 80)),
    mjxContainers: document.querySelectorAll('mjx-container').length,
    text: visible.textContent,
    images: Array.from(document.images).map(img => ({
        src: img.currentSrc || img.src, ok: img.complete && img.naturalWidth > 0})),
    widgetViews: views,
    widgetsRendered: rendered(),
    links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
    overflowing: overflowing,
    machinery: Array.from(document.querySelectorAll('.cell.tag_parameters, .cell.tag_injected-parameters'))
        .map(el => el.textContent.trim().slice(0, 60)),
    height: Math.max(document.body.scrollHeight, document.documentElement.scrollHeight),
  });
})().catch(e => done({error: String(e && e.stack || e)}));
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the test output is the report, not an access log
        pass


@contextlib.contextmanager
def serve(html_dir: Path) -> Iterator[str]:
    """Serve ``html_dir`` on 127.0.0.1 (free port) in a thread; yields the base URL ending in '/'."""
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def missing_browser() -> str | None:
    """Why Chromium cannot run here, or None."""
    for exe in (CHROMIUM, CHROMEDRIVER):
        if not exe.exists():
            return f"{exe} is missing: run `make browser` (installs Debian's chromium and chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: run `make venv` (requirements.txt pins it)"
    return None


@contextlib.contextmanager
def chromium() -> Iterator["object"]:
    """One headless Chromium (selenium WebDriver) with a fresh profile, console and network logs on."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = Path(tempfile.mkdtemp(prefix="medlib-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs) -> None:
        for key, value in attrs:
            if key == "id" or (tag == "a" and key == "name"):
                self.ids.add(value or "")


@functools.lru_cache(maxsize=256)
def _anchor_ids(path: Path, mtime: float) -> frozenset[str]:
    parser = _Anchors()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return frozenset(parser.ids)


def _local_target(html_dir: Path, rel_url: str) -> Path:
    path = html_dir / unquote(rel_url)
    return path / "index.html" if rel_url.endswith("/") or rel_url == "" else path


class PageChecker:
    """Checks pages of one built HTML folder, reached through ``base_url`` (http://127.0.0.1:…/ or file://…/)."""

    def __init__(self, driver, html_dir: Path, base_url: str, screenshot_dir: Path | None = None) -> None:
        self.driver = driver
        self.html_dir = Path(html_dir)
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.screenshot_dir = Path(screenshot_dir) if screenshot_dir else None
        base = urlsplit(self.base_url)
        self._local_origin = (base.scheme, base.netloc)
        self._flush_logs()

    def _flush_logs(self) -> None:
        for kind in ("browser", "performance"):
            self.driver.get_log(kind)

    def _is_local(self, url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme in LOCAL_SCHEMES or (parts.scheme, parts.netloc) == self._local_origin

    def _rel(self, url: str) -> str | None:
        """Path of ``url`` relative to the HTML folder, or None when the URL is outside it."""
        url = urldefrag(url)[0].split("?", 1)[0]
        return url[len(self.base_url):] if url.startswith(self.base_url) else None

    def check(self, rel: str, *, colab_url: str | None = None) -> list[str]:
        """Open ``rel`` (e.g. ``book/intro.html``) and return its problems (empty list: all good)."""
        self._flush_logs()
        self.driver.get(self.base_url + rel)
        facts = self.driver.execute_async_script(_COLLECT_JS)
        if "error" in facts:
            return [f"{rel}: the page check script failed: {facts['error']}"]
        problems = self._console_and_network(rel)
        problems += self._math(rel, facts)
        problems += [f"{rel}: image did not load: {img['src']}" for img in facts["images"] if not img["ok"]]
        if facts["widgetViews"] > facts["widgetsRendered"]:
            problems.append(f"{rel}: {facts['widgetViews']} saved widget views but only "
                            f"{facts['widgetsRendered']} rendered (widget JavaScript missing or failing?)")
        problems += self._links(rel, facts["links"])
        problems += [f"{rel}: output line cut off at the right edge ({o['content']} px of text in a "
                     f"{o['width']} px box): {o['line']!r}" for o in facts["overflowing"]]
        problems += [f"{rel}: parameters cell shown to readers: {text!r}" for text in facts["machinery"]]
        if colab_url is not None:
            colab = sorted({u for u in facts["links"] if u.startswith("https://colab.research.google.com/")})
            if colab != [colab_url]:
                problems.append(f"{rel}: Colab link(s) {colab or 'none'}; expected exactly {colab_url}")
        if self.screenshot_dir is not None:
            self._screenshot(rel, facts["height"])
        return problems

    def _browser_own(self, text: str) -> bool:
        return any(text.startswith(self.base_url + name) for name in BROWSER_OWN_REQUESTS)

    def _console_and_network(self, rel: str) -> list[str]:
        problems = [f"{rel}: console {e['level']}: {e['message'][:300]}"
                    for e in self.driver.get_log("browser")
                    if e["level"] == "SEVERE" and not self._browser_own(e["message"])]
        outside: set[str] = set()
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            params = message.get("params", {})
            if message["method"] == "Network.requestWillBeSent":
                url = params["request"]["url"]
                if not self._is_local(url):
                    outside.add(url)
            elif message["method"] == "Network.responseReceived":
                response = params["response"]
                if response.get("status", 0) >= 400 and not self._browser_own(response["url"]):
                    problems.append(f"{rel}: HTTP {response['status']} for {response['url']}")
        problems += [f"{rel}: request leaves the machine: {url}" for url in sorted(outside)]
        return problems

    def _math(self, rel: str, facts: dict) -> list[str]:
        problems = []
        if facts["mathUntypeset"]:
            problems.append(f"{rel}: {len(facts['mathUntypeset'])} of {facts['mathElements']} math elements not "
                            f"typeset by MathJax, e.g. {facts['mathUntypeset'][0]!r}"
                            + ("" if facts["hasMathJax"] else " (the page loads no MathJax)"))
        problems += [f"{rel}: MathJax error: {err}" for err in facts["mathErrors"]]
        for match in list(RAW_TEX.finditer(facts["text"]))[:3]:
            context = " ".join(facts["text"][max(0, match.start() - 30): match.end() + 30].split())
            problems.append(f"{rel}: raw TeX visible in the text: …{context}…")
        return problems

    def _links(self, rel: str, links: list[str]) -> list[str]:
        problems = []
        for url in sorted(set(links)):
            if not self._is_local(url) or urlsplit(url).scheme in LOCAL_SCHEMES:
                continue  # external links are allowed (not loaded); data:/blob: are not files
            target_rel = self._rel(url)
            if target_rel is None:
                problems.append(f"{rel}: link leaves the book folder: {url}")
                continue
            target = _local_target(self.html_dir, target_rel)
            if not target.is_file():
                problems.append(f"{rel}: broken link {url} (no file {target_rel or 'index.html'})")
                continue
            fragment = unquote(urldefrag(url)[1])
            if fragment and target.suffix == ".html" and fragment not in _anchor_ids(target, target.stat().st_mtime):
                problems.append(f"{rel}: broken anchor {url} (no id {fragment!r} in {target_rel})")
        return problems

    def _screenshot(self, rel: str, height: int) -> None:
        out = self.screenshot_dir / (rel.removesuffix(".html").replace("/", "__") + ".png")
        out.parent.mkdir(parents=True, exist_ok=True)
        clip = {"x": 0, "y": 0, "width": 1280, "height": min(int(height), SCREENSHOT_MAX_HEIGHT), "scale": 1}
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip})
        out.write_bytes(base64.b64decode(shot["data"]))
