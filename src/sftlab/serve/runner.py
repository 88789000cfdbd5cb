"""``serve()``: run the app with uvicorn in the foreground (what ``sftlab serve`` calls)."""

from __future__ import annotations

from typing import Any


def serve(
    model_ref: str, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info", **options: Any
) -> None:
    """Load the model and serve the OpenAI-compatible API until interrupted; ``options`` go to :func:`create_app`."""
    import uvicorn

    from sftlab.serve.app import create_app
    from sftlab.utils.progress import console

    app = create_app(model_ref, **options)
    auth = "on" if options.get("api_key") else "off"
    console.print(
        f"serving [bold]{app.state.served_name}[/bold] at http://{host}:{port}/v1 "
        f"(API key {auth}; health: http://{host}:{port}/health)"
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level)
