"""``sftlab ui`` over HTTP: pages of a real curated run, decisions appended, and the security rules."""

from __future__ import annotations

import json
import os

import pytest
from fastapi.testclient import TestClient

from sftlab.cli.main import main
from sftlab.ui.app import create_app
from ui_helpers import write_recipe


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ui")
    recipe = str(write_recipe(folder, "no-model-needed"))
    assert main(["run", recipe, "--until", "curate"]) == 0
    other = [f"output_dir={folder / 'runs' / 'other'}", "training.lr=0.0005"]
    assert main(["run", recipe, "--until", "curate", *other]) == 0
    (folder / "secret.txt").write_text("not for the browser")
    return folder / "runs"


@pytest.fixture
def client(runs):
    return TestClient(create_app(runs, who="tester"), base_url="http://127.0.0.1")


def test_runs_list_run_page_and_data_review_show_the_curated_run(client):
    page = client.get("/")
    assert page.status_code == 200 and 'data-run="tiny"' in page.text and "12 → 10" in page.text
    assert "curate done" in page.text
    run = client.get("/run", params={"r": "tiny"})
    assert run.status_code == 200 and "/files/tiny/curation/report.html" in run.text
    data = client.get("/data", params={"r": "tiny"})
    assert "12 shown of 12" in data.text and "exact_dedup: exact_duplicate</a> 2" in data.text
    rejected = client.get("/data", params={"r": "tiny", "status": "rejected"})
    assert "2 shown of 12" in rejected.text
    search = client.get("/data", params={"r": "tiny", "q": "LEMON yellow"})
    assert "1 shown of 12" in search.text and "Is a lemon yellow?" in search.text
    record = client.get("/record", params={"r": "tiny", "id": "fruit-5"})
    assert (
        record.status_code == 200
        and "Is a lemon yellow?" in record.text
        and 'data-next="/record?' in record.text
    )


def test_decisions_are_appended_one_line_each_and_the_source_is_untouched(client, runs):
    kept = runs / "tiny" / "curation" / "kept.jsonl"
    before = kept.read_bytes()
    ok = client.post("/api/review", json={"run": "tiny", "id": "fruit-1", "decision": "drop", "why": "vague"})
    assert ok.status_code == 200 and ok.json()["who"] == "tester"
    edit = client.post(
        "/api/review", json={"run": "tiny", "id": "fruit-2", "decision": "edit", "answer": "Yes."}
    )
    assert edit.status_code == 200
    lines = [json.loads(x) for x in (runs / "tiny" / "review.jsonl").read_text().splitlines()]
    assert [(x["id"], x["decision"]) for x in lines[-2:]] == [("fruit-1", "drop"), ("fruit-2", "edit")]
    assert lines[-1]["answer"] == "Yes." and lines[-2]["why"] == "vague" and lines[-1]["when"]
    assert kept.read_bytes() == before
    assert '<b id="decision">drop</b>' in client.get("/record", params={"r": "tiny", "id": "fruit-1"}).text


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"run": "tiny", "id": "fruit-1", "decision": "maybe"}, 400),
        ({"run": "tiny", "id": "no-such-id", "decision": "keep"}, 400),
        ({"run": "tiny", "id": "fruit-1", "decision": "edit"}, 400),
        ({"run": "../..", "id": "fruit-1", "decision": "keep"}, 403),
        ({"run": "nope", "id": "fruit-1", "decision": "keep"}, 404),
        (["not", "an", "object"], 400),
    ],
)
def test_bad_decisions_are_4xx_and_write_nothing(client, runs, body, status):
    review = runs / "tiny" / "review.jsonl"
    before = review.read_bytes() if review.exists() else b""
    assert client.post("/api/review", json=body).status_code == status
    assert (review.read_bytes() if review.exists() else b"") == before


def test_a_cross_site_form_post_is_refused(client):
    form = client.post("/api/review", data={"run": "tiny", "id": "fruit-1", "decision": "drop"})
    assert form.status_code == 415


@pytest.mark.parametrize(
    "url",
    [
        "/files/../secret.txt",
        "/files/%2E%2E/secret.txt",
        "/files/tiny/..%2F..%2Fsecret.txt",
        "/files/%2Fetc%2Fpasswd",
        "/files//etc/passwd",
        "/files/tiny/escape/secret.txt",
        "/run?r=..",
        "/run?r=/etc",
        "/data?r=tiny/escape",
        "/api/metrics?r=../",
    ],
)
def test_nothing_outside_the_runs_folder_is_served(client, runs, url):
    link = runs / "tiny" / "escape"
    if not link.exists():
        os.symlink(runs.parent, link)  # a symlink inside the runs folder pointing out of it
    response = client.get(url)
    assert response.status_code in (403, 404), url
    assert "not for the browser" not in response.text and "root:" not in response.text


def test_files_inside_the_runs_folder_are_served(client):
    assert "<html" in client.get("/files/tiny/curation/report.html").text.lower()
    assert client.get("/files/tiny/curation/missing.html").status_code == 404


def test_a_token_is_required_when_set_and_a_cookie_keeps_it(runs):
    app = create_app(runs, token="s3cret")
    client = TestClient(app, base_url="http://192.0.2.10:7860")  # any Host: the token is the guard
    assert client.get("/").status_code == 401
    assert client.get("/", params={"token": "wrong"}).status_code == 401
    assert client.get("/", params={"token": "s3cret"}).status_code == 200
    assert client.get("/run", params={"r": "tiny"}).status_code == 200  # the cookie now carries it
    other = TestClient(app, base_url="http://192.0.2.10:7860")
    assert other.get("/", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_without_a_token_only_loopback_host_names_are_answered(runs):
    assert TestClient(create_app(runs), base_url="http://evil.example:7860").get("/").status_code == 403
    assert TestClient(create_app(runs), base_url="http://localhost:7860").get("/").status_code == 200


def test_the_cli_refuses_another_address_without_a_token_and_a_missing_folder(runs, capsys, monkeypatch):
    monkeypatch.delenv("SFTLAB_UI_TOKEN", raising=False)
    assert main(["ui", str(runs), "--host", "0.0.0.0"]) == 1
    err = capsys.readouterr().err
    assert (
        "--host 0.0.0.0: other machines could read your runs; set --token" in err and "Traceback" not in err
    )
    assert main(["ui", str(runs / "missing")]) == 1
    assert "not a folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"run": "tiny", "model": "run", "messages": [{"role": "user", "content": "hi"}]},
            404,
            "no run model",
        ),
        ({"run": "tiny", "model": "other", "messages": []}, 400, "model: 'run' or 'base'"),
        ({"run": "tiny", "model": "base", "messages": []}, 400, "messages: a non-empty list"),
        (
            {"run": "tiny", "model": "base", "messages": [{"role": "robot", "content": "x"}]},
            400,
            "messages[0]",
        ),
        ({"run": "../x", "model": "base", "messages": []}, 403, "outside the runs folder"),
    ],
)
def test_bad_chat_requests_are_4xx(client, body, status, message):
    response = client.post("/api/chat", json=body)
    assert response.status_code == status and message in response.json()["error"]


def test_a_model_that_cannot_be_served_is_one_line_503(client):
    page = client.get("/chat", params={"r": "tiny"})
    assert (
        page.status_code == 200 and 'data-model="base"' in page.text and 'data-model="run"' not in page.text
    )
    with client:  # the chat servers stop with the app
        response = client.post(
            "/api/chat",
            json={"run": "tiny", "model": "base", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert (
        response.status_code == 503
        and "sftlab serve no-model-needed exited: error:" in response.json()["error"]
    )


def test_two_runs_side_by_side_show_headlines_and_only_the_settings_that_differ(client):
    page = client.get("/compare", params=[("r", "tiny"), ("r", "other")])
    assert page.status_code == 200
    diff = page.text.split('id="recipe-diff"')[1].split("</table>")[0]
    assert (
        "<code>training.lr</code>" in diff and "<code>0.0005</code>" in diff and "<code>0.001</code>" in diff
    )
    assert "<code>output_dir</code>" in diff and "<code>name</code>" not in diff
    assert page.text.count("12 → 10") == 2 and 'data-runs="[&#34;tiny&#34;, &#34;other&#34;]"' in page.text
    assert client.get("/compare", params={"r": "tiny"}).status_code == 400
    assert client.get("/compare", params=[("r", "tiny"), ("r", "../..")]).status_code == 403


def test_the_mask_preview_names_what_is_missing(client):
    missing = client.get("/api/mask", params={"r": "tiny", "id": "fruit-3"})
    assert missing.status_code == 503 and "cannot load the run's tokenizer" in missing.json()["error"]
    assert client.get("/api/mask", params={"r": "tiny", "id": "nope"}).status_code == 404


@pytest.mark.parametrize(
    ("params", "shown"),
    [({"min_words": "8"}, 12), ({"max_words": "7"}, 0), ({"min_words": "8", "status": "rejected"}, 2)],
)
def test_length_filters_count_the_words_of_every_turn(client, params, shown):
    page = client.get("/data", params={"r": "tiny", **params})  # "Is a plum yellow? Answer yes or no." + "no"
    assert page.status_code == 200 and f"{shown} shown of 12" in page.text


def test_sorting_and_the_next_record_follow_the_same_order(client):
    page = client.get("/data", params={"r": "tiny", "sort": "-words", "q": "yellow"})
    assert page.status_code == 200 and "12 shown of 12" in page.text
    record = client.get("/record", params={"r": "tiny", "sort": "-words", "q": "yellow", "id": "fruit-1"})
    assert "sort=-words" in record.text.split('data-next="')[1].split('"')[0]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"min_words": "many"}, "min_words 'many': a number"),
        ({"sort": "random"}, "sort 'random': one of words"),
        ({"min_score": "0.5"}, "needs score=NAME"),
    ],
)
def test_bad_filter_values_are_400_naming_the_parameter(client, params, message):
    page = client.get("/data", params={"r": "tiny", **params})
    assert page.status_code == 400 and message in page.json()["error"]


def test_score_ranges_and_sorting_read_meta_extra_scores(tmp_path):
    from sftlab.ui import data

    (tmp_path / "curation").mkdir()
    rows = [
        {"kind": "conversation", "turns": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
         "meta": {"id": f"s{i}", **({"extra": {"scores": {"heuristic": s}}} if s is not None else {})}}
        for i, s in enumerate([0.9, 0.2, None, 0.5])
    ]  # fmt: skip
    (tmp_path / "curation" / "kept.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = data.load_items(tmp_path)
    chosen, _ = data.choose(items, {"score": "heuristic", "min_score": "0.3"})
    assert [it.id for it in chosen] == ["s0", "s3"]  # s2 has no score: it fails a score range
    chosen, query = data.choose(items, {"score": "heuristic", "sort": "score"})
    assert [it.id for it in chosen] == ["s1", "s3", "s0", "s2"] and query == {
        "score": "heuristic",
        "sort": "score",
    }


def test_a_duplicate_and_the_record_it_duplicates_are_shown_side_by_side(client):
    dup = client.get("/record", params={"r": "tiny", "id": "fruit-11"}).text  # a copy of fruit-1
    assert 'class="related" data-id="fruit-1"' in dup and "named in its rejection" in dup
    kept = client.get("/record", params={"r": "tiny", "id": "fruit-1"}).text
    assert 'class="related" data-id="fruit-11"' in kept and "exact_duplicate of this one" in kept


def test_a_hand_edited_review_file_still_shows_and_gets_whole_lines(tmp_path):
    from sftlab.ui import data

    (tmp_path / "curation").mkdir()
    row = {"kind": "conversation", "turns": [{"role": "user", "content": "q"}], "meta": {"id": "a"}}
    (tmp_path / "curation" / "kept.jsonl").write_text(json.dumps(row) + "\n")
    (tmp_path / "review.jsonl").write_text('not json\n{"id": "a", "decision": "keep"}')  # no final newline
    assert data.decisions(tmp_path)["a"]["decision"] == "keep"
    data.append_decision(tmp_path, "a", "drop", who="me")
    lines = (tmp_path / "review.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["decision"] == "drop" and json.loads(lines[-2])["decision"] == "keep"
    assert data.decisions(tmp_path)["a"]["decision"] == "drop"


def test_the_review_filter_continues_where_the_reviewer_left_off(client):
    assert (
        client.post("/api/review", json={"run": "tiny", "id": "fruit-3", "decision": "keep"}).status_code
        == 200
    )
    shown = {}
    for review in ("none", "any", "keep"):
        page = client.get("/data", params={"r": "tiny", "review": review})
        shown[review] = int(page.text.split("<small>")[1].split(" shown")[0])
        assert ('data-id="fruit-3"' in page.text) == (review != "none")
    assert shown["none"] + shown["any"] == 12 and shown["keep"] >= 1
    assert f"not reviewed</a> {shown['none']}" in client.get("/data", params={"r": "tiny"}).text
    assert client.get("/data", params={"r": "tiny", "review": "maybe"}).status_code == 400
