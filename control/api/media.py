"""OpenAPI declarations for routes whose bodies are bytes, not JSON.

FastAPI documents every body as ``application/json`` unless told otherwise; the log and artifact
routes read and serve raw bytes (and Server-Sent Events), so the document said what they do not.
"""

from __future__ import annotations

from typing import Any

BINARY: dict[str, Any] = {"type": "string", "format": "binary"}


def binary_body(description: str) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its body as raw bytes (``application/octet-stream``)."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/octet-stream": {"schema": BINARY}},
        }
    }
