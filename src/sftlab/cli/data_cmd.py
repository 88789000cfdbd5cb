"""``sftlab data ...``: convert and inspect data files.

Other modules add their commands to :data:`app` (``data curate``, ``data
preview``, ``data synth``), so this module imports nothing heavy at import time.
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Read, convert, inspect and curate data.", no_args_is_help=True)

_FORMATS = "alpaca|sharegpt|messages|text|sftlab"
_DATASET_HELP = (
    "Entry to read when IN is a LLaMA-Factory dataset_info.json (or its folder); "
    "its file_name, formatting, columns and tags apply."
)


@app.command("convert")
def convert(
    src: str = typer.Argument(
        ...,
        metavar="IN",
        help="Input file (.jsonl/.json/.parquet/.csv/.txt), HF dataset folder, hub name, or a "
        "LLaMA-Factory dataset_info.json with --dataset.",
    ),
    dst: str = typer.Argument(
        ...,
        metavar="OUT",
        help="Output file; the container follows the extension (.jsonl/.json/.parquet/.csv).",
    ),
    to: str = typer.Option(..., "--to", help=f"Output format: {_FORMATS}."),
    from_: str = typer.Option("auto", "--from", help=f"Input format: auto|{_FORMATS}."),
    rejects: str = typer.Option(
        None, "--rejects", help="Write bad records here (JSONL) with reason and location."
    ),
    on_error: str = typer.Option(
        "fail", "--on-error", help="fail: stop at the first bad record; skip: set it aside."
    ),
    mapping: list[str] = typer.Option(
        None, "--map", help="Column/role mapping KEY=VALUE (e.g. prompt=question), repeatable."
    ),
    split: str = typer.Option(None, "--split", help="Split of a HF dataset."),
    limit: int = typer.Option(None, "--limit", min=1, help="Convert at most this many records."),
    dataset: str = typer.Option(None, "--dataset", help=_DATASET_HELP),
) -> None:
    """Convert IN to OUT in another format; prints in = written + rejected (unreadable, or not expressible in the target) and the fields it dropped."""
    from sftlab.cli.common import out
    from sftlab.data.io import read_records, write_records
    from sftlab.data.llamafactory import resolve
    from sftlab.errors import DataError
    from sftlab.utils.progress import track

    if on_error not in ("fail", "skip"):
        raise DataError(f"--on-error must be fail or skip, got {on_error!r}")
    rejects = rejects or f"{dst}.rejects.jsonl"
    where = resolve(src, dataset, format=from_, mapping=_parse_map(mapping), split=split, limit=limit)
    stream = read_records(
        where.path,
        format=where.format,
        mapping=where.mapping,
        on_error=on_error,
        rejects_path=rejects if on_error == "skip" else None,
        split=where.split,
        limit=where.limit,
    )
    unwritable = UnwritableRecords(Path(rejects), to)
    try:
        wstats = write_records(
            track(stream, f"convert → {to}", total=None),
            dst,
            format=to,
            on_skip=unwritable.add,
            allow_empty=False,
        )
    finally:
        unwritable.publish(append=on_error == "skip")
    rstats = stream.stats
    out.print(f"{src} ({rstats.format}) → {dst} ({to})", markup=False, highlight=False, soft_wrap=True)
    out.print(_convert_summary(rstats, wstats, to), markup=False, highlight=False, soft_wrap=True)
    for reason, n in wstats.dropped.most_common():
        out.print(
            f"dropped {reason} from {n} records ({to} cannot hold it)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if rstats.rejected or unwritable.count:
        out.print(f"rejects: {rejects}", markup=False, highlight=False, soft_wrap=True)


def _convert_summary(rstats, wstats, to: str) -> str:
    """``in 20 = written 3 + rejected 17 (read: malformed_json 1; cannot be alpaca: tool_calls 16)``."""
    skipped = sum(wstats.skipped.values())
    line = f"in {rstats.records_in} = written {wstats.written} + rejected {rstats.rejected + skipped}"
    parts = []
    if rstats.rejected_by_reason:
        parts.append("read: " + ", ".join(f"{k} {v}" for k, v in rstats.rejected_by_reason.most_common()))
    if skipped:
        parts.append(f"cannot be {to}: " + ", ".join(f"{k} {v}" for k, v in wstats.skipped.most_common()))
    return line + (f" ({'; '.join(parts)})" if parts else "")


class UnwritableRecords:
    """Records the target format cannot hold, appended to the rejects file once the read rejects are in it."""

    def __init__(self, path: Path, to: str):
        import tempfile

        self.path, self.to, self.count = path, to, 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed by publish()
            "wb", dir=path.parent, prefix=f".{path.name}.", delete=False
        )

    def add(self, record, reason: str) -> None:
        import orjson

        row = {
            "reason": f"cannot_write_{self.to}",
            "message": f"{reason}: the {self.to} format cannot hold it",
            "location": record.meta.id,
            "record": record.to_dict(),
        }
        self.fh.write(orjson.dumps(row, default=str) + b"\n")
        self.count += 1

    def publish(self, *, append: bool) -> None:
        """Add the rows to the rejects file (after this run's read rejects when ``append``)."""
        self.fh.close()
        tmp = Path(self.fh.name)
        if self.count:
            with open(self.path, "ab" if append else "wb") as dest, open(tmp, "rb") as src:
                dest.write(src.read())
        tmp.unlink(missing_ok=True)


def _parse_map(items: list[str] | None) -> dict[str, str]:
    from sftlab.errors import DataError

    result: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise DataError(f"--map {item!r}: expected KEY=VALUE, e.g. --map prompt=question")
        result[key.strip()] = value.strip()
    return result


@app.command("inspect")
def inspect(
    src: str = typer.Argument(
        ...,
        metavar="IN",
        help="Data file, HF dataset folder, hub name, or a LLaMA-Factory dataset_info.json with --dataset.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    tokenizer: str = typer.Option(
        None, "--tokenizer", help="Model whose tokenizer counts tokens (embedded name, folder, hub id)."
    ),
    from_: str = typer.Option("auto", "--from", help=f"Input format: auto|{_FORMATS}."),
    mapping: list[str] = typer.Option(None, "--map", help="Column/role mapping KEY=VALUE, repeatable."),
    dataset: str = typer.Option(None, "--dataset", help=_DATASET_HELP),
) -> None:
    """Format, record count, turn/role histograms, length percentiles, tools/reasoning, 3 samples."""
    import json

    from sftlab.cli.common import out, print_json
    from sftlab.data.inspect import inspect_file
    from sftlab.data.llamafactory import resolve

    tok = None
    if tokenizer:
        from sftlab.models import load_tokenizer, resolve_model

        tok = load_tokenizer(resolve_model(tokenizer))
    where = resolve(src, dataset, format=from_, mapping=_parse_map(mapping))
    info = inspect_file(where.path, format=where.format, mapping=where.mapping, tokenizer=tok)
    if as_json:
        print_json(info)
        return
    p = lambda s: out.print(s, markup=False, highlight=False, soft_wrap=True)  # noqa: E731
    read = info["read"]
    p(f"{info['path']}: format {info['format']}, {info['records']} records")
    p(
        f"in {read['in']} = kept {read['kept']} + rejected {read['rejected']}"
        + (
            f" ({', '.join(f'{k} {v}' for k, v in read['rejected_by_reason'].items())})"
            if read["rejected"]
            else ""
        )
    )
    if info["turns_histogram"]:
        p("turns: " + ", ".join(f"{k}×{v}" for k, v in info["turns_histogram"].items()))
        p("roles: " + ", ".join(f"{k} {v}" for k, v in info["roles"].items()))
        p(
            f"system prompt {info['with_system']}, tool definitions {info['with_tools']}, "
            f"tool calls {info['with_tool_calls']}, reasoning {info['with_reasoning']}"
        )
    c = info["chars"]
    p(f"chars: p50 {c['p50']}, p90 {c['p90']}, p99 {c['p99']}, max {c['max']}")
    if "tokens" in info:
        t = info["tokens"]
        p(f"tokens: p50 {t['p50']}, p90 {t['p90']}, p99 {t['p99']}, max {t['max']}")
    for i, sample in enumerate(info["samples"], 1):
        p(f"--- sample {i}")
        p(json.dumps(sample, ensure_ascii=False, indent=1)[:2000])
