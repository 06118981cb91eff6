"""The web dashboard served by the gateway at ``/dashboard``.

A static page (``static/``: HTML, CSS, a small hand-drawn SVG chart script and the page's
script) that reads the public ``/v1/network/*`` API; no build step, no CDN. Assets are read
once when the router is made and served from memory with their content type.
"""

from byteleap.gateway.dashboard.router import dashboard_router

__all__ = ["dashboard_router"]
