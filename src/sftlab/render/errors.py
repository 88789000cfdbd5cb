"""Rendering errors; each names the record (and template) so the user can find and fix it."""

from __future__ import annotations

from sftlab.errors import SftlabError


class RenderError(SftlabError):
    """A record cannot be rendered into trustworthy ids and labels."""

    reason = "render_error"

    def __init__(self, message: str, record_id: str | None = None):
        self.record_id = record_id
        where = f"record {record_id!r}: " if record_id is not None else ""
        super().__init__(where + message)


class NotPrefixStableError(RenderError):
    """The template renders a prefix of a conversation differently from the same turns inside the whole one."""

    reason = "not_prefix_stable"


class EmptyLabelsError(RenderError):
    """No token of the record carries loss; training on it would teach nothing (or divide by zero)."""

    reason = "no_trained_tokens"


class TooLongError(RenderError):
    """The record does not fit ``render.max_length`` under the truncation policy and is dropped."""

    reason = "dropped_too_long"
