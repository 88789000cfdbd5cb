"""Start the server in a background thread on a free port, for tests and for other stages' tools.

>>> # with running_server(tiny_model_dir, max_batch=4) as base_url:
>>> #     OpenAI(base_url=base_url, api_key="x").models.list()
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from sftlab.errors import SftlabError


@contextlib.contextmanager
def running_server(
    model, *, host: str = "127.0.0.1", startup_timeout: float = 120.0, **options: Any
) -> Iterator[str]:
    """Yield the OpenAI base URL (``http://127.0.0.1:<port>/v1``) of a live server; stop it on exit.

    ``model`` is a model reference (``options`` go to :func:`create_app`) or an app built already.
    The port is bound before uvicorn starts, so two servers never race for it.
    """
    import httpx
    import uvicorn
    from fastapi import FastAPI

    from sftlab.serve.app import create_app

    app = model if isinstance(model, FastAPI) else create_app(str(model), **options)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="sftlab-uvicorn", daemon=True
    )
    thread.start()
    root = f"http://{host}:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if not thread.is_alive():
                raise SftlabError(f"the server on {root} exited during start-up")
            with contextlib.suppress(httpx.HTTPError):
                if server.started and httpx.get(f"{root}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SftlabError(
                    f"the server on {root} did not answer /health within {startup_timeout:.0f}s"
                )
            time.sleep(0.05)
        yield f"{root}/v1"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
