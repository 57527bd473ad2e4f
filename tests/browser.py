"""A real headless browser for the web-page tests: Debian's chromium (scripts/setup.sh installs it) driven by
playwright, whose own browser download cannot be used offline."""
import shutil

import pytest


@pytest.fixture(scope='module')
def browser_page():
    """A fresh page of a headless chromium, for the tests of one module."""
    from playwright.sync_api import sync_playwright
    chromium = shutil.which('chromium')
    if chromium is None:
        pytest.fail("chromium is missing: apt-get install chromium (scripts/setup.sh does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport={'width': 1280, 'height': 1000})
        page.set_default_timeout(60_000)
        yield page
        browser.close()


def screenshot(page, folder, name: str) -> str:
    """Save the whole page as ``<folder>/<name>.png`` and check that a real image was written."""
    path = folder / f'{name}.png'
    page.screenshot(path=str(path), full_page=True)
    assert path.is_file() and path.stat().st_size > 1000, path
    return str(path)
