"""The mask preview of one record: rendered with the run's tokenizer and template, trained tokens marked.

The same rendering as training (:func:`sftlab.render.sample.render_record` with the
recipe's ``render`` section) and the same markup as ``preview/preview.html``
(:func:`sftlab.render.preview.spans_html`), so what the page marks is what is trained.
The tokenizer is loaded once per run, on the first record page that asks.
"""

from __future__ import annotations

import threading
from pathlib import Path

from sftlab.data.record import record_from_dict
from sftlab.errors import SftlabError

_TOKENIZERS: dict[Path, tuple[float, object, object]] = {}
_LOCK = threading.Lock()


class MaskUnavailable(Exception):
    """The run's tokenizer or recipe cannot be loaded (answered with 503 and the reason)."""


def _tokenizer_and_render(run: Path):
    """The run's tokenizer (template resolved) and render section, cached until the recipe changes."""
    from sftlab.models import load_tokenizer
    from sftlab.recipe.load import load_recipe
    from sftlab.render import resolve_template

    path = run / "recipe.resolved.yaml"
    if not path.is_file():
        raise MaskUnavailable("this run has no recipe.resolved.yaml to render with")
    stamp = path.stat().st_mtime
    with _LOCK:
        cached = _TOKENIZERS.get(run)
        if cached and cached[0] == stamp:
            return cached[1], cached[2]
        try:
            recipe = load_recipe(path)
            tokenizer = load_tokenizer(
                recipe.model.name,
                revision=recipe.model.revision,
                trust_remote_code=recipe.model.trust_remote_code,
            )
            tokenizer = resolve_template(tokenizer, recipe.render.template, recipe.render.template_kwargs)
        except (SftlabError, OSError, ValueError) as err:
            raise MaskUnavailable(f"cannot load the run's tokenizer: {str(err).splitlines()[0]}") from None
        _TOKENIZERS[run] = (stamp, tokenizer, recipe.render)
        return tokenizer, recipe.render


def mask_html(run: Path, record: dict) -> dict:
    """``{"html", "tokens", "trained"}`` of the record's rendering, or ``{"error"}`` when it does not render."""
    from sftlab.render.errors import RenderError
    from sftlab.render.preview import spans, spans_html
    from sftlab.render.sample import render_record

    tokenizer, cfg = _tokenizer_and_render(run)
    try:
        sample = render_record(record_from_dict(record), tokenizer, cfg)
    except RenderError as err:
        return {"error": str(err)}
    return {
        "html": spans_html(spans(tokenizer, sample)),
        "tokens": len(sample),
        "trained": sample.num_trained,
    }
