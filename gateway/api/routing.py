"""One API route as the table declares it, and its registration behind the key check."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web
from pydantic import BaseModel

from gateway.api.auth import Handler, guarded

# What ``Route.roles`` may say besides role names.
PUBLIC: None = None  # no key needed
ANY_KEY: tuple[str, ...] = ()  # any valid key; the handler limits it to the caller's objects


@dataclass(frozen=True)
class Route:
    """A route: who may call it (admin keys pass every role), and its OpenAPI description."""

    method: str
    path: str
    handler: Handler
    summary: str
    roles: tuple[str, ...] | None
    body: type[BaseModel] | None = None  # the request body's schema
    ok_status: int = 200
    response: type[BaseModel] | None = None  # the success body's schema, where one is declared
    # The path names an object of one caller (notice, job): another key gets 404 for it.
    own_object: bool = False


def register(app: web.Application, routes: Iterable[Route]) -> None:
    """Add each route with the key check its roles ask for."""
    for route in routes:
        app.router.add_route(route.method, route.path, guarded(route.handler, route.roles))
