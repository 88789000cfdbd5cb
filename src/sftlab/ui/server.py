"""``run_ui()``: check the options, then serve the workbench with uvicorn in the foreground."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

from sftlab.errors import SftlabError


def is_loopback(host: str) -> bool:
    """True for names and addresses that only this machine can reach.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_options(root: str | Path, host: str, token: str | None) -> Path:
    """The runs folder, after refusing what would expose it or cannot work (one line each)."""
    path = Path(root)
    if not path.is_dir():
        raise SftlabError(f"RUNS_DIR {root}: not a folder (give the folder that holds your run folders)")
    if not is_loopback(host) and not token:
        raise SftlabError(
            f"--host {host}: other machines could read your runs; set --token (or SFTLAB_UI_TOKEN) "
            "to require it, or keep --host 127.0.0.1"
        )
    return path


def run_ui(
    root: str | Path, *, host: str, port: int, token: str | None, who: str, recipes: str = "."
) -> None:
    import uvicorn

    from sftlab.serve.runner import check_listen
    from sftlab.ui.app import create_app
    from sftlab.utils.progress import console

    path = check_options(root, host, token)
    if not Path(recipes).is_dir():
        raise SftlabError(f"--recipes {recipes}: not a folder")
    check_listen(host, port)
    app = create_app(path, token=token, who=who, recipes=recipes)
    shown = host if is_loopback(host) or ":" not in host else f"[{host}]"
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    console.print(f"sftlab ui over {path.resolve()} at {url} (review decisions signed '{who}')", markup=False)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def default_who() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return socket.gethostname()
