"""Request bodies of the OpenAI-compatible API, validated strictly, and OpenAI-style errors.

Every field the server does not implement is a 400 naming it (``param``), never ignored: a
client that asks for something gets it or hears why not. A few fields that change nothing
about the answer are accepted on purpose (see :data:`NO_OP_FIELDS` and docs/serve.md). The fields
we use must have the right type: ``"max_tokens": "10"`` is a 400, not a guess.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

NO_OP_FIELDS = {
    "user": "an end-user id for the provider's abuse monitoring; this server keeps no such records",
    "store": "only false: this server stores no completions",
    "refusal, audio, function_call, annotations": (
        "only null (annotations: empty), on assistant messages a client sends back as it got them"
    ),
}
"""Fields accepted although they change nothing, because clients send them back as they got them."""


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
    model_config = ConfigDict(strict=True, extra="forbid", populate_by_name=False)


class TextPart(_Body):
    type: Literal["text"]
    text: str


class FunctionCall(_Body):
    name: str = Field(min_length=1)
    arguments: str


class ToolCall(_Body):
    id: str
    type: Literal["function"]
    function: FunctionCall


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    refusal: None = None
    audio: None = None
    function_call: None = None
    annotations: list[Any] | None = Field(default=None, max_length=0)

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(_Body):
    include_usage: bool = False


class FunctionDef(_Body):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Body):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(_Body):
    name: str


class NamedToolChoice(_Body):
    type: Literal["function"]
    function: NamedFunction


class JsonSchemaFormat(_Body):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Body):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class _Sampling(_Body):
    model: str | None = None
    """Must name the served model (404 ``model_not_found`` otherwise); may be left out."""
    temperature: float = Field(default=1.0, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    n: int = Field(default=1, ge=1, le=1, description="only n=1 is supported")
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    """A 64-bit signed integer, as OpenAI documents it."""
    stream: bool = False
    stream_options: StreamOptions | None = None
    presence_penalty: float = Field(default=0.0, ge=-2, le=2)
    frequency_penalty: float = Field(default=0.0, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    user: str | None = None

    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        stops = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        if len(stops) > 4:
            raise ApiError(400, "at most 4 stop sequences are allowed", param="stop")
        return stops

    def bias(self, vocab_size: int) -> tuple[tuple[int, float], ...]:
        """``logit_bias`` as (token id, bias) pairs; keys are token ids written as strings, as OpenAI takes them."""
        pairs = []
        for key, value in (self.logit_bias or {}).items():
            if not key.isdigit() or int(key) >= vocab_size:
                raise ApiError(
                    400,
                    f"logit_bias key {key!r} is not a token id of this model (0..{vocab_size - 1})",
                    param="logit_bias",
                )
            if not -100 <= value <= 100:
                raise ApiError(
                    400, f"logit_bias[{key!r}] is {value}; it must be in -100..100", param="logit_bias"
                )
            pairs.append((int(key), float(value)))
        return tuple(pairs)


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    store: Literal[False] | None = None

    def logprob_count(self) -> int | None:
        """How many alternatives per token the answer lists (None: no logprobs)."""
        if self.top_logprobs is not None and not self.logprobs:
            raise ApiError(400, "top_logprobs needs logprobs: true", param="top_logprobs")
        return (self.top_logprobs or 0) if self.logprobs else None


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    echo: Literal[False] = False
    logprobs: int | None = Field(default=None, ge=0, le=5)

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
        message = f"invalid '{param}': {first['msg']}"
        code = None
        if param == "n":
            message = "only n=1 is supported"
        elif first["type"] == "extra_forbidden":
            message = (
                f"unsupported parameter '{param}': this server does not implement it (see docs/serve.md)"
            )
            code = "unsupported_parameter"
        raise ApiError(400, message, param=param or None, code=code) from None


def _is_type_tag(part: Any) -> bool:
    """Union errors add the alternative's type to the location (``content.str``); users need the field."""
    return isinstance(part, str) and (
        part in {"str", "int", "float", "bool", "none", "NamedToolChoice"}
        or "[" in part
        or part.startswith(("function-", "literal"))
    )
