"""Request bodies of the OpenAI-compatible API, validated strictly, and OpenAI-style errors.

Unknown fields are ignored (clients send many optional ones), but the fields we
use must have the right type: ``"max_tokens": "10"`` is a 400, not a guess.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ApiError(Exception):
    """Becomes ``{"error": {"message", "type", "param", "code"}}`` with ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class TextPart(_Body):
    type: Literal["text"]
    text: str


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(_Body):
    include_usage: bool = False


class _Sampling(_Body):
    model: str | None = None
    """Accepted and echoed; the server has one model."""
    temperature: float = Field(default=1.0, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    n: int = Field(default=1, ge=1, le=1, description="only n=1 is supported")
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    """A 64-bit signed integer, as OpenAI documents it."""
    stream: bool = False
    stream_options: StreamOptions | None = None

    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        stops = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        if len(stops) > 4:
            raise ApiError(400, "at most 4 stop sequences are allowed", param="stop")
        return stops


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    echo: Literal[False] = False

    def prompt_text(self) -> str:
        if isinstance(self.prompt, str):
            return self.prompt
        if len(self.prompt) != 1:
            raise ApiError(400, "send exactly one prompt per request (a list of one string)", param="prompt")
        return self.prompt[0]


def validate(model: type[_Body], payload: Any):
    """Parse ``payload`` into ``model``; the first problem becomes a 400 naming the field."""
    if not isinstance(payload, dict):
        raise ApiError(400, "the request body must be a JSON object")
    try:
        return model.model_validate(payload)
    except ValidationError as err:
        first = err.errors()[0]
        param = ".".join(str(p) for p in first["loc"] if not _is_type_tag(p))
        message = first["msg"]
        if param == "n":
            message = "only n=1 is supported"
        raise ApiError(400, f"invalid '{param}': {message}", param=param or None) from None


def _is_type_tag(part: Any) -> bool:
    """Union errors add the alternative's type to the location (``content.str``); users need the field."""
    return isinstance(part, str) and (
        part in {"str", "int", "float", "bool", "none"} or "[" in part or part.startswith("function-")
    )
