"""Precision of the default-on curation filters on hand-labelled public data (issue 15).

The fixture ``tests/data/filter_precision/`` holds ShareGPT and OpenAI-evals records that
each filter drops or nearly drops, labelled by reading them (its README says how).
The table is computed by ``bench/bench_filter_precision.py`` — the same code that writes
the "Filter precision" section of BENCHMARKS.md — with the filters as they are now, so a
change that makes a default-on filter drop good records fails here.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "bench_filter_precision", ROOT / "bench" / "bench_filter_precision.py"
)
bench = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bench  # its dataclasses look their module up while being defined
_spec.loader.exec_module(bench)

MIN_PRECISION = 0.95


@pytest.fixture(scope="module")
def fixture():
    return bench.load_fixture()


@pytest.fixture(scope="module")
def rows(fixture):
    records, labels = fixture
    return {r.name: r for r in bench.measure(records, labels, bench.default_on_steps())}


def test_fixture_is_a_real_labelled_sample(fixture):
    records, labels = fixture
    assert len({label.record for label in labels}) >= 300
    assert all(label.record in records for label in labels)
    assert {label.filter for label in labels} >= {
        "placeholder",
        "boilerplate",
        "exact_dedup",
        "minhash_dedup",
        "context_fragment",
        "jailbreak",
        "pii",
    }
    size = sum(p.stat().st_size for p in bench.FIXTURE.iterdir())
    assert size < 1_000_000


def test_default_on_rows_are_the_quickstart_filters(rows):
    on = {name for name, row in rows.items() if row.default_on}
    assert on == {"placeholder", "boilerplate", "exact_dedup", "minhash_dedup"}


@pytest.mark.parametrize("name", ["placeholder", "boilerplate", "exact_dedup", "minhash_dedup"])
def test_default_on_filter_precision(rows, name):
    row = rows[name]
    assert row.tp >= 10, f"{name}: too few drops in the sample to measure precision"
    assert row.precision >= MIN_PRECISION, (
        f"{name}: precision {row.precision:.3f} < {MIN_PRECISION} (TP {row.tp}, FP {row.fp}); "
        "see which labelled records it now drops with bench/bench_filter_precision.py"
    )


@pytest.mark.parametrize("name", ["context_fragment", "jailbreak", "pii"])
def test_issue_22_filter_precision(rows, name):
    """The filters real chat pools need (issue 22), on hand-labelled ShareGPT records."""
    row = rows[name]
    assert row.labelled >= 60 and row.tp >= 20, f"{name}: too few labelled drops to measure precision"
    assert row.precision >= MIN_PRECISION, (
        f"{name}: precision {row.precision:.3f} < {MIN_PRECISION} (TP {row.tp}, FP {row.fp})"
    )
    assert row.recall is not None and row.recall >= 0.7, f"{name}: recall {row.recall:.3f}"


def test_opt_in_filters_are_off_by_default():
    """Refusal detection stays below the bar on its own; the schema must keep it off."""
    from sftlab.recipe.sections.curation import BoilerplateFilterConfig

    assert BoilerplateFilterConfig().refusals is False
