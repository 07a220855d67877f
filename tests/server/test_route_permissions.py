"""Every route of the platform server declares its permission: a new route without one
fails here, so none ships unprotected (OpenAPI routes and the others alike)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopline.server._permissions import PUBLIC, Role, all_routes, declared_permission

# the routes anyone may call; every other route needs a role (the UI's pages: reader)
PUBLIC_PATHS = {
    "/api/v1/health",
    "/openapi.json",
    "/login",
    "/logout",
    "/static/{file_version}/{name:path}",
}


@pytest.fixture
def app(tmp_path: Path):  # type: ignore[no-untyped-def]
    from loopline.config import init_project
    from loopline.project import open_stores, project_settings
    from loopline.server import create_app

    init_project(tmp_path)
    opened = open_stores(project_settings(tmp_path))
    yield create_app(opened)
    opened.close()


def test_every_route_declares_a_permission(app) -> None:  # type: ignore[no-untyped-def]
    undeclared = [
        route.path for route in all_routes(app.routes) if declared_permission(route) is None
    ]
    assert undeclared == []


def test_only_the_listed_routes_are_public(app) -> None:  # type: ignore[no-untyped-def]
    public = {
        route.path for route in all_routes(app.routes) if declared_permission(route) == PUBLIC
    }
    assert public == PUBLIC_PATHS


def test_the_walk_sees_a_route_without_a_declaration(app) -> None:  # type: ignore[no-untyped-def]
    @app.get("/api/v1/forgotten")
    def forgotten() -> None:
        return None

    routes = {route.path: route for route in all_routes(app.routes)}
    assert declared_permission(routes["/api/v1/forgotten"]) is None
    assert declared_permission(routes["/api/v1/whoami"]) is Role.READER


def test_the_ui_pages_need_the_reader_role(app) -> None:  # type: ignore[no-untyped-def]
    routes = {route.path: route for route in all_routes(app.routes)}
    for path in ("/", "/experiments/{name}", "/runs/{run_id}"):
        assert declared_permission(routes[path]) is Role.READER, path
