"""The built book as a reader sees it: every toc page in headless Chromium, served and from disk.

Each page of ``_toc.yml`` (present and future: the list is read from the toc) is opened once over
http://127.0.0.1 and once as file://, and must show no console error, send no request off the
machine, typeset its math, load every image, render saved widgets, have only resolving internal
links, and (notebooks) a correct Colab link. Screenshots go to ``_build/screenshots/``.

The fault tests copy the built HTML, plant one fault each (broken image, unrendered formula,
broken link, ...) and assert that the very same checker reports it.
"""

from __future__ import annotations

import html as html_lib
import json
import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from browser_checks import PageChecker, chromium, missing_browser, serve
from conftest import REPO
from medlib.book import toc_files, toc_notebooks

pytestmark = pytest.mark.slow

PAGES = [p.relative_to(REPO).with_suffix(".html").as_posix() for p in toc_files(REPO)]
NOTEBOOK_PAGES = {p.relative_to(REPO).with_suffix(".html").as_posix(): p.relative_to(REPO).as_posix()
                  for p in toc_notebooks(REPO)}
SCREENSHOTS = REPO / "_build" / "screenshots"


def colab_url(notebook: str) -> str:
    """The Colab address of ``notebook`` (repo-relative), from _config.yml's repository and launch buttons."""
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    repo = config["repository"]
    owner_repo = urlsplit(repo["url"]).path.strip("/").removesuffix(".git")
    book = (repo.get("path_to_book") or "").strip("/")
    path = f"{book}/{notebook}" if book else notebook
    base = config["launch_buttons"]["colab_url"].rstrip("/")
    return f"{base}/github/{owner_repo}/blob/{repo.get('branch', 'main')}/{path}"


def test_colab_url_matches_the_documented_form():
    config = yaml.safe_load((REPO / "_config.yml").read_text())["repository"]
    owner_repo = urlsplit(config["url"]).path.strip("/")
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", owner_repo), config["url"]
    assert colab_url("notebooks/00_environment.ipynb") == (
        f"https://colab.research.google.com/github/{owner_repo}/blob/{config['branch']}/notebooks/00_environment.ipynb")


@pytest.fixture(scope="session")
def browser():
    reason = missing_browser()
    if reason:
        pytest.fail(reason)
    with chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def reports(built_book, browser):
    """Problems of every toc page, over http (with a screenshot each) and from disk (file://)."""
    _, html = built_book
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
    out: dict[str, dict[str, list[str]]] = {"http": {}, "file": {}}
    with serve(html) as base:
        checker = PageChecker(browser, html, base, screenshot_dir=SCREENSHOTS)
        for page in PAGES:
            out["http"][page] = checker.check(page, colab_url=_expected_colab(page))
    checker = PageChecker(browser, html, html.as_uri() + "/")
    for page in PAGES:
        out["file"][page] = checker.check(page, colab_url=_expected_colab(page))
    return out


def _expected_colab(page: str) -> str | None:
    return colab_url(NOTEBOOK_PAGES[page]) if page in NOTEBOOK_PAGES else None


@pytest.mark.parametrize("page", PAGES)
def test_page_works_served_from_localhost(reports, page):
    assert reports["http"][page] == []
    assert (SCREENSHOTS / (page.removesuffix(".html").replace("/", "__") + ".png")).stat().st_size > 10_000


@pytest.mark.parametrize("page", PAGES)
def test_page_works_opened_from_disk(reports, page):
    assert reports["file"][page] == []


def test_pages_use_vendored_javascript_only(built_book):
    """No page refers to a CDN for a script; MathJax and the widget manager are in the build."""
    _, html = built_book
    for page in PAGES:
        text = (html / page).read_text()
        remote = re.findall(r'<script[^>]+src="(https?://[^"]+)"', text)
        assert remote == [], f"{page} loads scripts from {remote}"
    assert (html / "_vendor" / "mathjax" / "es5" / "tex-mml-chtml.js").is_file()
    assert (html / "_vendor" / "html-manager" / "dist" / "embed-amd.js").is_file()
    math_pages = [p for p in PAGES if 'class="math' in (html / p).read_text()]
    assert math_pages, "no page of the book has math: the MathJax check would be vacuous"
    for page in math_pages:
        assert "_vendor/mathjax/es5/tex-mml-chtml.js" in (html / page).read_text(), page


# ---------------------------------------------------------------- planted faults

@pytest.fixture
def html_copy(built_book, tmp_path) -> Path:
    _, html = built_book
    copy = tmp_path / "html"
    # the vendored JavaScript (~30 MB) is only read: link it instead of copying it for every test
    shutil.copytree(html, copy, ignore=lambda folder, names: ["_vendor"] if Path(folder) == html else [])
    (copy / "_vendor").symlink_to(html / "_vendor", target_is_directory=True)
    return copy


def _plant(html_dir: Path, page: str, snippet: str, *, drop_mathjax: bool = False) -> None:
    path = html_dir / page
    text = path.read_text()
    if drop_mathjax:
        text = re.sub(r'<script[^>]*src="[^"]*mathjax[^"]*"[^>]*>\s*</script>', "", text)
    marker = "</article>" if "</article>" in text else "</body>"
    path.write_text(text.replace(marker, snippet + marker, 1))


def _check(browser, html_dir: Path, page: str) -> list[str]:
    with serve(html_dir) as base:
        return PageChecker(browser, html_dir, base).check(page)


def _assert_reported(problems: list[str], *needles: str) -> None:
    for needle in needles:
        assert any(needle in p for p in problems), f"{needle!r} not reported; got {problems}"


def test_checker_reports_a_broken_image(browser, html_copy):
    page = PAGES[0]
    (html_copy / "_static" / "not-an-image.png").write_bytes(b"this is not a PNG")
    _plant(html_copy, page, '<p><img src="missing-figure.png" alt="gone">'
                            f'<img src="{_up(page)}_static/not-an-image.png" alt="corrupt"></p>')
    problems = _check(browser, html_copy, page)
    _assert_reported(problems, "image did not load: ", "missing-figure.png", "not-an-image.png")


@pytest.mark.parametrize("variant", ["raw-dollars", "mathjax-removed"])
def test_checker_reports_an_unrendered_formula(browser, html_copy, variant):
    page = PAGES[0]
    if variant == "raw-dollars":
        _plant(html_copy, page, "<p>Planted formula $$E = mc^2$$ in a paragraph.</p>", drop_mathjax=True)
        expected = ("raw TeX visible in the text", "$$E = mc^2$$")
    else:
        _plant(html_copy, page, r'<p>Inline <span class="math notranslate nohighlight">\(x^2\)</span>.</p>',
               drop_mathjax=True)
        expected = ("not typeset by MathJax", "(the page loads no MathJax)")
    _assert_reported(_check(browser, html_copy, page), *expected)


def test_checker_reports_broken_internal_links(browser, html_copy):
    page = PAGES[0]
    _plant(html_copy, page, '<p><a href="no-such-page.html">gone</a> <a href="#no-such-anchor">here</a></p>')
    problems = _check(browser, html_copy, page)
    _assert_reported(problems, "broken link", "no-such-page.html", "broken anchor", "'no-such-anchor'")


def test_checker_reports_requests_leaving_the_machine(browser, html_copy):
    page = PAGES[0]
    _plant(html_copy, page, '<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"></script>')
    _assert_reported(_check(browser, html_copy, page),
                     "request leaves the machine: https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js")


def _up(page: str) -> str:
    return "../" * page.count("/")


def _widget_snippet(page: str, with_scripts: bool) -> str:
    """A saved IntSlider (ipywidgets' own embed format) and, optionally, the book's widget scripts."""
    import ipywidgets
    from ipywidgets.embed import embed_data

    data = embed_data(views=[ipywidgets.IntSlider(value=7, description="planted")])
    state = json.dumps(data["manager_state"]).replace("</", "<\\/")
    view = json.dumps(data["view_specs"][0])
    scripts = ""
    if with_scripts:  # the same files, in the same order, as _config.yml gives myst-nb
        config = yaml.safe_load((REPO / "_config.yml").read_text())["sphinx"]["config"]
        scripts = "".join(f'<script src="{_up(page)}_static/{html_lib.escape(src)}"></script>'
                          for src in config["nb_ipywidgets_js"])
    return (f'<script type="application/vnd.jupyter.widget-state+json">{state}</script>{scripts}'
            f'<div class="cell_output"><script type="application/vnd.jupyter.widget-view+json">{view}</script></div>')


def test_vendored_widget_manager_renders_saved_widgets_offline(browser, html_copy):
    page = PAGES[0]
    _plant(html_copy, page, _widget_snippet(page, with_scripts=True))
    assert _check(browser, html_copy, page) == []
    slider = browser.execute_script("return document.querySelectorAll('.widget-subarea .widget-slider').length")
    assert slider == 1


def test_checker_reports_widgets_that_did_not_render(browser, html_copy):
    page = PAGES[0]
    _plant(html_copy, page, _widget_snippet(page, with_scripts=False))
    _assert_reported(_check(browser, html_copy, page), "1 saved widget views but only 0 rendered")


def _notebook_page() -> str:
    return next(page for page in PAGES if page in NOTEBOOK_PAGES)


LONG_LOG = "epoch 1/64 " + "loss=0.6931 " * 60  # ~800 characters on one line


def test_long_output_lines_wrap_instead_of_running_off_the_page(browser, html_copy):
    page = _notebook_page()
    _plant(html_copy, page, f'<div class="cell_output docutils container"><div class="output stream highlight-myst-ansi '
                            f'notranslate"><div class="highlight"><pre><span></span>{LONG_LOG}</pre></div></div></div>')
    assert _check(browser, html_copy, page) == []


def test_checker_reports_output_lines_cut_off_at_the_right_edge(browser, html_copy):
    page = _notebook_page()
    path = html_copy / page
    stylesheet = re.compile(r'<link[^>]*href="[^"]*medlib\.css[^"]*"[^>]*>')
    assert stylesheet.search(path.read_text()), "the book's stylesheet (_static/medlib.css) is not on the page"
    path.write_text(stylesheet.sub("", path.read_text()))
    _plant(html_copy, page, f'<div class="cell_output docutils container"><div class="output stream highlight-myst-ansi '
                            f'notranslate"><div class="highlight"><pre><span></span>{LONG_LOG}</pre></div></div></div>')
    _assert_reported(_check(browser, html_copy, page), "output line cut off at the right edge", "'epoch 1/64 loss=")


def test_checker_reports_a_parameters_cell_shown_to_readers(browser, html_copy):
    page = _notebook_page()
    _plant(html_copy, page, '<div class="cell tag_injected-parameters docutils container"><div class="cell_input">'
                            '<pre>profile = "smoke"</pre></div></div>')
    _assert_reported(_check(browser, html_copy, page), 'parameters cell shown to readers: \'profile = "smoke"\'')
