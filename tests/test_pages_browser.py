"""The listing and 404 pages in a real headless browser (Debian's chromium, via Playwright).

At a phone's viewport (375 px, touch, the viewport meta honoured) and a
desktop's, in light and dark colour schemes: each page is screenshotted into the
test's tmp folder and its structure asserted, not its pixels: the way up works,
the table has its columns, a column header re-sorts the rows, nothing is wider
than the screen, light and dark really differ, the 404's suggestion is a link
that works. `devserve serve`'s own server runs in this process on port 0.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, NamedTuple

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from devserve.config import ServeConfig
from tests.support import CHROMIUM, CHROMIUM_ARGS, port_of, running_devserve

pytestmark = [pytest.mark.slow]

Scheme = Literal["light", "dark"]


class View(NamedTuple):
    width: int
    height: int
    phone: bool  # touch, and the viewport meta decides the layout width


VIEWS = {"phone": View(375, 740, True), "desktop": View(1280, 800, False)}
LONG_NAME = "an-unbroken-file-name-that-is-much-wider-than-a-phone-screen-" * 3 + "end.txt"
# CSS pixels a finger needs (WCAG 2.5.5; the platforms' own guidelines say the same)
TAP = 44
# The three largest files of docs/, largest first (see `site`)
SIZES_DESCENDING = ["huge.bin", "caf\ufffd.txt", "a&b <c> #?%.txt"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pages") / "site"
    docs = root / "docs"
    (docs / "images").mkdir(parents=True)
    files = {
        "guide.txt": (b"the guide\n", 1_700_000_000),
        "small.txt": (b"s", 1_600_000_000),
        "huge.bin": (b"h" * 300_000, 1_500_000_000),
        "a&b <c> #?%.txt": (b"odd names work\n", 1_650_000_000),
        LONG_NAME: (b"long\n", 1_400_000_000),
    }
    for name, (data, mtime) in files.items():
        (docs / name).write_bytes(data)
        os.utime(docs / name, (mtime, mtime))
    undecodable = os.path.join(os.fsencode(docs), b"caf\xe9.txt")
    with open(undecodable, "wb") as f:
        f.write(b"not utf-8 at all\n")
    os.utime(undecodable, (1_450_000_000, 1_450_000_000))
    (root / "readme.txt").write_text("at the root\n")
    return root


@pytest.fixture(scope="module")
def base(site: Path) -> Iterator[str]:
    with running_devserve(ServeConfig(directory=site, quiet=True)) as (server, _, _):
        yield f"http://127.0.0.1:{port_of(server)}/"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(params=["phone", "desktop"])
def view(request: pytest.FixtureRequest) -> View:
    return VIEWS[str(request.param)]


@pytest.fixture(params=["light", "dark"])
def scheme(request: pytest.FixtureRequest) -> Scheme:
    return "dark" if request.param == "dark" else "light"


@pytest.fixture
def page(browser: Browser, view: View, scheme: Scheme) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": view.width, "height": view.height},
        is_mobile=view.phone,
        has_touch=view.phone,
        color_scheme=scheme,
    )
    try:
        yield context.new_page()
    finally:
        context.close()


def shoot(page: Page, tmp_path: Path, name: str) -> None:
    """A full-page screenshot in the test's tmp folder (to look at; never compared)."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0


def assert_fits(page: Page, view: View) -> None:
    """Nothing is wider than the screen: no horizontal scrolling, no cell past the edge."""
    scroll, client = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert client == view.width  # the viewport meta gives a phone its own width
    assert scroll <= client, f"{scroll} px wide in a {client} px viewport"
    widest = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('body *')]"
        ".map(e => e.getBoundingClientRect().right))"
    )
    assert widest <= client + 0.5


def row_names(page: Page) -> list[str]:
    return [text.strip() for text in page.locator("tbody tr td:first-child").all_inner_texts()]


def file_rows(page: Page) -> list[str]:
    return [name for name in row_names(page) if not name.endswith("/")]


# --------------------------------------------------------------------------- the listing


def test_a_listing_reads_well_sorts_and_leads_up(
    page: Page, base: str, view: View, scheme: Scheme, tmp_path: Path
) -> None:
    response = page.goto(base + "docs/")
    assert response is not None and response.status == 200
    shoot(page, tmp_path, f"listing-{view.width}-{scheme}")

    headers = page.get_by_role("columnheader")
    expect(headers).to_have_count(3)
    assert [t.split()[0] for t in headers.all_inner_texts()] == ["Name", "Size", "Modified"]
    expect(page.locator("tbody tr")).to_have_count(7)
    assert row_names(page)[0] == "images/"  # folders first
    assert_fits(page, view)

    up = page.get_by_role("link", name="Parent folder")
    expect(up).to_be_visible()
    for target in (up, page.locator("tbody a").first, page.locator("thead a").first):
        box = target.bounding_box()
        assert box is not None and box["height"] >= TAP, box

    # a column header sorts by it (largest first), and again the other way
    page.get_by_role("link", name=re.compile("^Size")).click()
    expect(page).to_have_url(base + "docs/?sort=size&order=desc")
    assert file_rows(page)[:3] == SIZES_DESCENDING
    expect(page.locator('th[aria-sort="descending"]')).to_have_text(re.compile("^Size"))
    page.get_by_role("link", name=re.compile("^Size")).click()
    expect(page).to_have_url(base + "docs/?sort=size&order=asc")
    assert file_rows(page)[-3:] == SIZES_DESCENDING[::-1]
    page.get_by_role("link", name=re.compile("^Modified")).click()
    expect(page).to_have_url(base + "docs/?sort=date&order=desc")
    assert file_rows(page)[0] == "guide.txt" and file_rows(page)[-1] == LONG_NAME

    # the way up, from a sorted page too
    page.get_by_role("link", name="Parent folder").click()
    expect(page).to_have_url(base)
    expect(page.locator("h1")).to_have_text("Directory listing for /")
    expect(page.get_by_role("link", name="Parent folder")).to_have_count(0)  # the root
    assert row_names(page) == ["docs/", "readme.txt"]
    shoot(page, tmp_path, f"root-{view.width}-{scheme}")


def test_odd_names_are_shown_as_they_are_and_their_links_work(page: Page, base: str) -> None:
    page.goto(base + "docs/")
    page.get_by_role("link", name="a&b <c> #?%.txt").click()
    expect(page.locator("body")).to_have_text("odd names work")
    page.goto(base + "docs/")
    page.get_by_role("link", name="caf\ufffd.txt").click()  # a name that is not UTF-8
    expect(page.locator("body")).to_have_text("not utf-8 at all")
    page.goto(base + "docs/")
    page.get_by_role("link", name=LONG_NAME).click()
    expect(page.locator("body")).to_have_text("long")


def colours(page: Page) -> tuple[str, str, str]:
    """The page's text, background and (first) link colours, as computed."""
    text, background, link = page.evaluate(
        "() => { const b = getComputedStyle(document.body);"
        " const a = document.querySelector('a');"
        " return [b.color, b.backgroundColor, a ? getComputedStyle(a).color : ''] }"
    )
    return str(text), str(background), str(link)


@pytest.mark.parametrize("path", ["docs/", "docs/gude.txt"], ids=["listing", "404"])
def test_light_and_dark_differ_and_each_is_readable(browser: Browser, base: str, path: str) -> None:
    seen = {}
    schemes: tuple[Scheme, ...] = ("light", "dark")
    for scheme in schemes:
        context = browser.new_context(color_scheme=scheme)
        try:
            page = context.new_page()
            page.goto(base + path)
            seen[scheme] = colours(page)
        finally:
            context.close()
    light, dark = seen["light"], seen["dark"]
    assert light[0] != dark[0] and light[1] != dark[1] and light[2] != dark[2]
    for text, background, link in (light, dark):
        assert text != background and link != background
    assert luminance(light[1]) > 0.8 > 0.1 > luminance(dark[1])  # white-ish and near black
    assert luminance(light[0]) < 0.2 < 0.7 < luminance(dark[0])


def luminance(css: str) -> float:
    """The relative luminance of an ``rgb(r, g, b)`` colour (WCAG 2)."""
    found = re.fullmatch(r"rgba?\((\d+), (\d+), (\d+)(?:, [\d.]+)?\)", css)
    assert found, css
    channels = [int(c) / 255 for c in found.groups()]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


# --------------------------------------------------------------------------- the 404 page


def test_the_404_suggestion_is_a_link_that_works(
    page: Page, base: str, view: View, scheme: Scheme, tmp_path: Path
) -> None:
    response = page.goto(base + "docs/gude.txt")
    assert response is not None and response.status == 404
    shoot(page, tmp_path, f"404-{view.width}-{scheme}")
    expect(page.locator("h1")).to_have_text("File not found")
    expect(page.locator("code")).to_have_text("/docs/gude.txt")
    suggestion = page.get_by_role("link", name="/docs/guide.txt")
    expect(suggestion).to_be_visible()
    box = suggestion.bounding_box()
    assert box is not None and box["height"] > 0
    assert_fits(page, view)
    suggestion.click()
    expect(page).to_have_url(base + "docs/guide.txt")
    expect(page.locator("body")).to_have_text("the guide")


def test_a_404_for_a_long_path_still_fits_a_phone(browser: Browser, base: str) -> None:
    context = browser.new_context(
        viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True
    )
    try:
        page = context.new_page()
        response = page.goto(base + "docs/" + LONG_NAME.replace("end", "ned"))
        assert response is not None and response.status == 404
        assert_fits(page, VIEWS["phone"])
        page.get_by_role("link", name="/docs/" + LONG_NAME).click()
        expect(page.locator("body")).to_have_text("long")
    finally:
        context.close()
