"""Jinja2 templates (autoescape on, always) and the one function that renders a page."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from meeting_governance.web.security import csrf_token

HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"


def _when(value: datetime | None) -> str:
    """Dates as operators read them: UTC, to the minute."""
    if value is None:
        return ""
    return value.strftime("%Y-%m-%d %H:%M UTC")


def _day(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d")


def make_templates() -> Jinja2Templates:
    # Autoescape for every template whatever its extension: no value reaches HTML unescaped.
    env = Environment(loader=FileSystemLoader(TEMPLATES_DIR), autoescape=select_autoescape(
        enabled_extensions=(), default_for_string=True, default=True), undefined=StrictUndefined)
    env.filters["when"] = _when
    env.filters["day"] = _day
    return Jinja2Templates(env=env)


def render(request: Request, name: str, context: dict[str, Any] | None = None, *,
           status_code: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    """A page with what every page needs: who is signed in and the session's CSRF token."""
    from meeting_governance.web.auth import current_principal_cached

    data: dict[str, Any] = {
        "principal": current_principal_cached(request),
        "csrf_token": csrf_token(request),
        "title": "",
        "page_errors": [],
    }
    data.update(context or {})
    templates: Jinja2Templates = request.app.state.templates
    response = templates.TemplateResponse(request, name, data, status_code=status_code,
                                          headers=headers)
    return response
