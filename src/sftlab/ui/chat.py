"""Chat with a run's model and its base model, side by side, streamed through ``sftlab serve`` itself.

Each model is served by a ``sftlab serve`` child process on a free loopback
port with a random API key (started on the first message, kept until the
workbench stops); the workbench relays the OpenAI streaming response to the
page as it comes. So the chat is exactly what a deployed ``sftlab serve``
answers — template, stop tokens and sampling included.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

from sftlab.ui.bodies import json_object
from sftlab.ui.runs import read_json

ROLES = ("system", "user", "assistant")
START_TIMEOUT = 600.0


class ChatUnavailable(Exception):
    """The model cannot be served (no trained model yet, or the server did not start)."""


@dataclass
class Served:
    proc: subprocess.Popen
    url: str
    key: str
    log: Path


def model_refs(run: Path) -> dict[str, str]:
    """``{"run": <run folder>, "base": <base model>}`` for what this run can chat with."""
    refs = {}
    if (run / "final").is_dir():
        refs["run"] = str(run)
    base = read_json(run / "final" / "sftlab_base.json").get("base_model") or _recipe_model(run)
    if base:
        refs["base"] = str(base)
    return refs


def _recipe_model(run: Path) -> str | None:
    import yaml

    try:
        recipe = yaml.safe_load((run / "recipe.resolved.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    return (recipe.get("model") or {}).get("name") if isinstance(recipe, dict) else None


def check_messages(messages) -> str | None:
    """What is wrong with a chat history sent by the page (``None`` when it is fine)."""
    if not isinstance(messages, list) or not messages:
        return "messages: a non-empty list of {role, content}"
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            return f"messages[{i}]: needs role (system, user or assistant) and content (text)"
    return None


class ChatServers:
    """One ``sftlab serve`` child per model reference, started on demand."""

    def __init__(self):
        self.servers: dict[str, Served] = {}
        self.logs = Path(tempfile.mkdtemp(prefix="sftlab-ui-chat-"))
        self._lock = asyncio.Lock()

    async def url_for(self, ref: str) -> Served:
        async with self._lock:
            served = self.servers.get(ref)
            if served is None or served.proc.poll() is not None:
                served = self.servers[ref] = self._start(ref)
        await self._wait(served, ref)
        return served

    def _start(self, ref: str) -> Served:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        key = secrets.token_urlsafe(16)
        log = self.logs / f"serve-{len(self.servers) + 1}.log"
        command = [
            sys.executable,
            "-m",
            "sftlab.cli.main",
            "serve",
            ref,
            "--port",
            str(port),
            "--api-key",
            key,
        ]
        with open(log, "wb") as fh:
            proc = subprocess.Popen(command, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return Served(proc, f"http://127.0.0.1:{port}", key, log)

    async def _wait(self, served: Served, ref: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        async with httpx.AsyncClient() as client:
            while loop.time() < deadline:
                if served.proc.poll() is not None:
                    tail = served.log.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
                    raise ChatUnavailable(f"sftlab serve {ref} exited: {tail[0]}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{served.url}/health", timeout=2)).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise ChatUnavailable(f"sftlab serve {ref} did not answer within {START_TIMEOUT:.0f}s")

    async def stream(self, served: Served, messages: list, max_tokens: int):
        """The server's SSE bytes as they arrive (an error becomes one ``data: {"error": ...}`` event)."""
        body = {"messages": messages, "max_tokens": max_tokens, "stream": True}
        headers = {"Authorization": f"Bearer {served.key}"}
        async with (
            httpx.AsyncClient(timeout=None) as client,
            client.stream("POST", f"{served.url}/v1/chat/completions", json=body, headers=headers) as r,
        ):
            if r.status_code != 200:
                detail = (await r.aread()).decode(errors="replace")
                yield f"data: {json.dumps({'error': f'{r.status_code}: {detail[:300]}'})}\n\n".encode()
                return
            async for chunk in r.aiter_raw():
                yield chunk

    def close(self) -> None:
        for served in self.servers.values():
            if served.proc.poll() is None:
                served.proc.terminate()


def register(app, render, run_dir) -> None:
    """``/chat?r=RUN`` and ``POST /api/chat`` (``run_dir(request, name)`` checks the run path)."""
    app.state.chat = ChatServers()

    @app.get("/chat", response_class=HTMLResponse)
    def chat_page(request: Request, r: str = "."):
        refs = model_refs(run_dir(request, r))
        return render(request, "chat.html.jinja", run=r, refs=refs)

    @app.post("/api/chat")
    async def chat(request: Request):
        body = await json_object(request)
        if isinstance(body, JSONResponse):
            return body
        refs = model_refs(run_dir(request, body.get("run") if isinstance(body.get("run"), str) else None))
        which = body.get("model")
        if which not in ("run", "base"):
            return JSONResponse({"error": "model: 'run' or 'base'"}, status_code=400)
        if which not in refs:
            return JSONResponse({"error": f"this run has no {which} model to chat with yet"}, status_code=404)
        problem = check_messages(body.get("messages"))
        max_tokens = body.get("max_tokens", 256)
        if problem or not isinstance(max_tokens, int) or not 1 <= max_tokens <= 2048:
            return JSONResponse({"error": problem or "max_tokens: 1 to 2048"}, status_code=400)
        try:
            served = await request.app.state.chat.url_for(refs[which])
        except ChatUnavailable as err:
            return JSONResponse({"error": str(err)}, status_code=503)
        stream = request.app.state.chat.stream(served, body["messages"], max_tokens)
        return StreamingResponse(stream, media_type="text/event-stream")
