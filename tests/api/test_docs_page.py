"""/docs in headless Chromium with nothing from elsewhere: Swagger UI's assets are served
by the API itself, so the page works offline and where public CDNs are slow."""

from __future__ import annotations

from playwright.async_api import Browser

from tests.api.conftest import Stack
from tests.conftest import watch


async def test_the_api_docs_render_offline(stack: Stack, served: str, browser: Browser) -> None:
    page = await browser.new_page()
    seen = watch(page, served)
    await page.goto(f"{served}/docs")
    await page.wait_for_selector(".swagger-ui .opblock", timeout=20_000)
    operations = await page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/v1/tickets" in path for path in operations)
    assert any("/v1/knowledge" in path for path in operations)
    assert seen.outside == []  # no CDN
    assert seen.problems == []
    await page.close()
