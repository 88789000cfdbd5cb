"""Request bodies of the workbench's write endpoints: JSON only, which also keeps cross-site forms out."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse


def is_json(request: Request) -> bool:
    """Whether the request says it carries JSON (a plain HTML form cannot, so a foreign page cannot post here)."""
    return request.headers.get("content-type", "").split(";")[0].strip() == "application/json"


NOT_JSON = {"error": "send the request as application/json"}


async def json_object(request: Request) -> dict[str, Any] | JSONResponse:
    """The body as a JSON object, or the 415/400 answer to send back instead."""
    if not is_json(request):
        return JSONResponse(NOT_JSON, status_code=415)
    try:
        body = await request.json()
    except ValueError:
        return JSONResponse({"error": "the body is not JSON"}, status_code=400)
    if not isinstance(body, dict):
        return JSONResponse({"error": "the body is not a JSON object"}, status_code=400)
    return body
