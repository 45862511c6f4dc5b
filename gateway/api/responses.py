"""The one place the API makes JSON responses: UTF-8 text, not ``\\uXXXX`` escapes."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

_dumps = functools.partial(json.dumps, ensure_ascii=False)


def json_response(
    data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """``application/json; charset=utf-8`` with Chinese text as it is."""
    return web.json_response(data, status=status, headers=headers, dumps=_dumps)
