"""Routes for the dashboard page and its assets (kept out of the OpenAPI spec: not an API)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from byteleap.gateway.errors import NotFound

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}
# The page only talks to its own origin; nothing inline runs.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def load_assets() -> dict[str, tuple[bytes, str]]:
    """name → (bytes, content type) of every file under ``static/``."""
    root = resources.files("byteleap.gateway.dashboard") / "static"
    assets: dict[str, tuple[bytes, str]] = {}
    for item in root.iterdir():
        suffix = "." + item.name.rsplit(".", 1)[-1]
        if item.is_file() and suffix in _TYPES:
            assets[item.name] = (item.read_bytes(), _TYPES[suffix])
    return assets


def dashboard_router() -> APIRouter:
    assets = load_assets()
    router = APIRouter(include_in_schema=False)

    def serve(name: str) -> Response:
        found = assets.get(name)
        if found is None:
            raise NotFound(f"no dashboard asset {name!r}")
        body, media_type = found
        return Response(body, media_type=media_type, headers=_HEADERS)

    @router.get("/dashboard")
    async def page() -> Response:
        return serve("index.html")

    @router.get("/dashboard/")
    async def page_slash() -> RedirectResponse:
        return RedirectResponse("/dashboard")

    @router.get("/dashboard/static/{name}")
    async def asset(name: str) -> Response:
        return serve(name)

    return router
