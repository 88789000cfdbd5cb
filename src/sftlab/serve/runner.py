"""``serve()``: run the app with uvicorn in the foreground (what ``sftlab serve`` calls)."""

from __future__ import annotations

from typing import Any


def check_listen(host: str, port: int) -> None:
    """Fail now, in one line, when ``host:port`` cannot be listened on (bad port, in use, no permission)."""
    import socket

    from sftlab.errors import SftlabError

    if not 0 <= port <= 65535:
        raise SftlabError(f"--port {port}: a TCP port is between 0 and 65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise SftlabError(f"--host {host}: cannot resolve it ({err.strerror})") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as err:
            raise SftlabError(f"cannot listen on {host}:{port}: {err.strerror}") from None


def serve(
    model_ref: str, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info", **options: Any
) -> None:
    """Load the model and serve the OpenAI-compatible API until interrupted; ``options`` go to :func:`create_app`."""
    import uvicorn

    from sftlab.serve.app import create_app
    from sftlab.utils.progress import console

    check_listen(host, port)  # before the model loads, which takes a while
    app = create_app(model_ref, **options)
    auth = "on" if options.get("api_key") else "off"
    console.print(
        f"serving [bold]{app.state.served_name}[/bold] at http://{host}:{port}/v1 "
        f"(API key {auth}; health: http://{host}:{port}/health)"
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level)
