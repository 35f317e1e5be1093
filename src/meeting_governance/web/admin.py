"""Admin pages: local accounts (list, add, disable). Only the admin role reaches them."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from meeting_governance import users
from meeting_governance.errors import InputError, NotFoundError
from meeting_governance.web.auth import Principal, allow, ctx_of
from meeting_governance.web.templating import render

router = APIRouter(include_in_schema=False)


def _page(request: Request, *, status: int = 200, error: str = "", field: str = "",
          name: str = "", role: str = "coordinator", done: str = "") -> Response:
    ctx = ctx_of(request)
    with ctx.session() as db:
        rows = users.list_users(db)
    return render(request, "admin_users.html", {
        "title": "Users", "rows": rows, "roles": users.ROLES, "error": error,
        "error_field": field, "name": name, "role": role, "done": done,
        "min_length": users.MIN_PASSWORD_LENGTH}, status_code=status)


@router.get("/admin/users")
def users_page(request: Request, done: str = "",
               who: Principal = Depends(allow("users.manage"))) -> Response:
    return _page(request, done={"added": "The account was added.",
                                "disabled": "The account was disabled."}.get(done, ""))


@router.post("/admin/users")
def users_add(request: Request, who: Principal = Depends(allow("users.manage", csrf=True)),
              name: str = Form("", max_length=200), role: str = Form(""),
              password: str = Form("", max_length=1024),
              password_again: str = Form("", max_length=1024)) -> Response:
    if password != password_again:
        return _page(request, status=422, error="The two passwords differ.", field="password",
                     name=name, role=role)
    ctx = ctx_of(request)
    try:
        with ctx.session() as db:
            users.add_user(ctx, db, name, role, password, actor=who.actor)
    except InputError as exc:
        message = str(exc)
        field = ("role" if "role" in message else "password" if "password" in message
                 else "name")
        return _page(request, status=422, error=message, field=field, name=name, role=role)
    return RedirectResponse("/admin/users?done=added", status_code=303)


@router.post("/admin/users/{name}/disable")
def users_disable(request: Request, name: str,
                  who: Principal = Depends(allow("users.manage", csrf=True))) -> Response:
    if name == who.name:
        return _page(request, status=422, error="You cannot disable your own account.")
    ctx = ctx_of(request)
    try:
        with ctx.session() as db:
            users.disable_user(ctx, db, name, actor=who.actor)
    except NotFoundError:
        return _page(request, status=404, error="No such account.")
    return RedirectResponse("/admin/users?done=disabled", status_code=303)
