"""MMLU and GPQA loading: the shipped data, both MMLU layouts, malformed input, seeded selection.

GPQA rule: no question text in the repo, tests or logs. Assertions here use counts, shapes and hashes only,
and the synthetic CSVs used for malformed-record cases are made-up placeholders, not GPQA content.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import logging
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from reasonir_rag.errors import GPQAPasswordError
from reasonir_rag.eval.datasets import Question, select_questions
from reasonir_rag.eval.gpqa import GPQA_RELEASE_URL, GPQA_SHA256, fetch_gpqa, load_gpqa, parse_gpqa_csv
from reasonir_rag.eval.mmlu import load_mmlu, parse_mmlu_csv

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gpqa_zip(repo_data) -> Path:
    return repo_data / "gpqa" / "dataset.zip"


@pytest.fixture(scope="module")
def gpqa_password(repo_data) -> str:
    text = (repo_data / "gpqa" / "PROVENANCE.md").read_text()
    return text.split("Password")[1].split(":", 1)[1].split()[0]


# ------------------------------------------------------------------------------------------------ MMLU
def test_mmlu_shipped_folder_cais_layout(repo_data):
    test = load_mmlu(repo_data / "mmlu")
    assert len(test) == 14042 and len(test.subjects) == 57
    assert not test.problems
    assert len(load_mmlu(repo_data / "mmlu", split="dev")) == 285
    assert {len(q.choices) for q in test} == {4}
    assert set(Counter(q.answer_index for q in test)) == {0, 1, 2, 3}
    first = test[0]
    assert first.id == "mmlu/abstract_algebra/test/0" and first.subject == "abstract_algebra"
    # the split folder itself works as the source too, with the same content fingerprint
    assert load_mmlu(repo_data / "mmlu" / "test").fingerprint == test.fingerprint


def test_mmlu_hendrycks_layout_matches_cais_layout(repo_data, tmp_path):
    """The same rows written in the hendrycks layout (no header, answer letter) load to equal questions."""
    cais = load_mmlu(repo_data / "mmlu", subjects=["anatomy", "virology"])
    folder = tmp_path / "data" / "test"
    folder.mkdir(parents=True)
    for subject in ("anatomy", "virology"):
        with (folder / f"{subject}_test.csv").open("w", newline="") as fh:
            writer = csv.writer(fh)
            for q in cais:
                if q.subject == subject:
                    writer.writerow([q.question, *q.choices, "ABCD"[q.answer_index]])
    hendrycks = load_mmlu(tmp_path)
    assert hendrycks.questions == cais.questions
    assert [q.id for q in hendrycks] == [q.id for q in cais]


def test_mmlu_malformed_rows_are_named_and_skipped(tmp_path, caplog):
    folder = tmp_path / "test"
    folder.mkdir()
    rows = [
        "What is 2+2?,3,4,5,6,B",
        "Which gas do plants absorb?,oxygen,carbon dioxide,helium,neon,E",  # bad letter
        "Too few columns,a,b,c",  # missing column
        '"Quoted, with a comma",one,two,three,four,d',  # lower-case letter is fine
    ]
    (folder / "toy_test.csv").write_text("\n".join(rows) + "\n")
    with caplog.at_level(logging.WARNING):
        ds = load_mmlu(tmp_path)
    assert [q.question for q in ds] == ["What is 2+2?", "Quoted, with a comma"]
    assert [q.answer_index for q in ds] == [1, 3]
    assert [q.id for q in ds] == ["mmlu/toy/test/0", "mmlu/toy/test/3"]  # ids stay stable past bad rows
    assert len(ds.problems) == 2
    assert "toy_test.csv:2: bad answer letter 'E'" in ds.problems[0]
    assert "toy_test.csv:3: expected 6 columns, got 4" in ds.problems[1]
    assert "skipped 2 malformed record(s)" in caplog.text


def test_mmlu_multiline_question_line_numbers():
    text = 'question,choice0,choice1,choice2,choice3,answer\n"two\nlines",a,b,c,d,0\nq,a,b,c,d,7\n'
    questions, problems = parse_mmlu_csv(text, subject="s", split="test", where="f.csv")
    assert len(questions) == 1 and questions[0].question == "two\nlines"
    assert problems == ["f.csv:4: bad answer value '7' (expected 0-3 or A-D)"]


def test_mmlu_header_missing_a_column_is_a_clear_error(tmp_path):
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "x_test.csv").write_text("question,choice0,choice1,choice2,choice3\nq,a,b,c,d\n")
    with pytest.raises(ValueError, match=r"x_test.csv: header .* lacks column\(s\) \['answer'\]"):
        load_mmlu(tmp_path)


def test_mmlu_missing_folder_and_all_bad_rows(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no '<subject>_test\.csv' files"):
        load_mmlu(tmp_path)
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "x_test.csv").write_text("q,a,b,c,d,Z\n")
    with pytest.raises(ValueError, match=r"no usable question.*bad answer letter 'Z'"):
        load_mmlu(tmp_path)


def test_mmlu_selection_is_seeded(repo_data):
    a = load_mmlu(repo_data / "mmlu", subjects=["college physics", "anatomy"], per_subject=10, seed=3)
    b = load_mmlu(repo_data / "mmlu", subjects=["anatomy", "college_physics"], per_subject=10, seed=3)
    c = load_mmlu(repo_data / "mmlu", subjects=["anatomy", "college_physics"], per_subject=10, seed=4)
    assert [q.id for q in a] == [q.id for q in b]
    assert [q.id for q in a] != [q.id for q in c]
    assert Counter(q.subject for q in a) == {"anatomy": 10, "college_physics": 10}
    # adding a subject leaves the other subjects' draws unchanged
    d = load_mmlu(repo_data / "mmlu", subjects=["anatomy", "college_physics", "virology"], per_subject=10,
                  seed=3)
    assert [q.id for q in d if q.subject != "virology"] == [q.id for q in a]
    assert a.describe()["selection"]["per_subject"] == 10
    with pytest.raises(ValueError, match=r"unknown subject\(s\) \['astrology'\]"):
        load_mmlu(repo_data / "mmlu", subjects=["astrology"])


def test_select_questions_sample_keeps_order():
    qs = [Question(f"q{i}", "s", "x", ("a", "b"), 0) for i in range(50)]
    picked = select_questions(qs, sample=7, seed=1)
    assert len(picked) == 7 and picked == sorted(picked, key=lambda q: int(q.id[1:]))
    assert picked == select_questions(qs, sample=7, seed=1)
    with pytest.raises(ValueError, match="sample must be a positive integer"):
        select_questions(qs, sample=0)


def test_question_validation_and_repr_hides_text():
    q = Question("id1", "s", "secret question text", ["a", "b", "c"], 2)
    assert q.choices == ("a", "b", "c") and q.answer_letter == "C"
    assert "secret" not in repr(q)
    with pytest.raises(ValueError, match=r"answer_index 3 is outside 0\.\.2"):
        Question("id2", "s", "x", ("a", "b", "c"), 3)


# ------------------------------------------------------------------------------------------------ GPQA
@pytest.mark.parametrize("subset, count", [("main", 448), ("diamond", 198), ("extended", 546)])
def test_gpqa_counts(gpqa_zip, gpqa_password, subset, count):
    ds = load_gpqa(gpqa_zip, subset, password=gpqa_password)
    assert len(ds) == count and not ds.problems
    assert set(ds.subjects) == {"Biology", "Chemistry", "Physics"}
    assert all(len(q.choices) == 4 for q in ds)
    # a few official records repeat a choice text verbatim (2 to 4 per subset); none is dropped for it
    assert sum(len(set(q.choices)) < 4 for q in ds) <= 4
    assert all(q.id.startswith("gpqa/rec") for q in ds)
    assert ds.fingerprint == "461ae7329f15a3e35f8184d2dac24b990f34fdf12f366ca4062d8e6638cd08dc"


def _order_hash(ds) -> str:
    return hashlib.sha256(json.dumps([[q.id, q.answer_index] for q in ds]).encode()).hexdigest()


def test_gpqa_shuffle_is_seeded_and_balanced(gpqa_zip, gpqa_password):
    a = load_gpqa(gpqa_zip, "diamond", password=gpqa_password, seed=0)
    b = load_gpqa(gpqa_zip, "diamond", password=gpqa_password, seed=0)
    c = load_gpqa(gpqa_zip, "diamond", password=gpqa_password, seed=1)
    assert _order_hash(a) == _order_hash(b) != _order_hash(c)
    # the correct answer (always first in the CSV) lands everywhere: no position holds more than 40%
    counts = Counter(q.answer_index for q in a)
    assert set(counts) == {0, 1, 2, 3} and max(counts.values()) < 0.4 * len(a)
    # same record, same order in another subset (diamond is a subset of main)
    main = {q.id: q for q in load_gpqa(gpqa_zip, "main", password=gpqa_password, seed=0)}
    shared = [q for q in a if q.id in main]
    assert len(shared) > 150
    assert all(main[q.id].choices == q.choices and main[q.id].answer_index == q.answer_index for q in shared)


def test_gpqa_selection(gpqa_zip, gpqa_password):
    ds = load_gpqa(gpqa_zip, "main", password=gpqa_password, subjects=["physics"], sample=20, seed=5)
    assert len(ds) == 20 and ds.subjects == ["Physics"]
    again = load_gpqa(gpqa_zip, "main", password=gpqa_password, subjects=["Physics"], sample=20, seed=5)
    assert [q.id for q in ds] == [q.id for q in again]


def test_gpqa_wrong_password_is_a_clear_error(gpqa_zip):
    with pytest.raises(GPQAPasswordError, match=r"dataset.zip: cannot decrypt 'dataset/gpqa_diamond.csv'.*"
                                                r"wrong password"):
        load_gpqa(gpqa_zip, "diamond", password="not-the-password")
    with pytest.raises(ValueError, match="unknown GPQA subset 'experts'"):
        load_gpqa(gpqa_zip, "experts")


def test_gpqa_malformed_records_name_the_record_not_the_text():
    columns = ["Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3",
               "Subdomain", "Record ID", "High-level domain"]
    rows = [
        ["Placeholder one?", "right", "w1", "w2", "w3", "Toy", "recA", "Physics"],
        ["Placeholder two?", "right", "", "w2", "w3", "Toy", "recB", "Physics"],
        ["Placeholder three?", "right", "w1", "w2", "w3", "Toy", "recA", "Physics"],
    ]
    buf = io.StringIO()
    csv.writer(buf).writerows([columns, *rows])
    questions, problems = parse_gpqa_csv(buf.getvalue(), subset="main", seed=0, where="z.zip:main.csv")
    assert [q.id for q in questions] == ["gpqa/recA"]
    assert problems == ["z.zip:main.csv record 2 (recB): empty field(s) ['Incorrect Answer 1']",
                        "z.zip:main.csv record 3 (recA): duplicate Record ID"]
    assert not any("Placeholder" in p for p in problems)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['Record ID'\]"):
        parse_gpqa_csv("Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3,"
                       "High-level domain\n", subset="main", seed=0, where="z.zip:main.csv")


_NO_WRITES = r"""
import os, sys
from reasonir_rag.eval.gpqa import load_gpqa  # imported first: a fresh checkout writes .pyc files
writes = []
def hook(event, args):
    if event == "open":
        path, mode, flags = (list(args) + [None, None, None])[:3]
        wr = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        if wr:
            writes.append(str(path))
    elif event in ("os.rename", "os.replace", "shutil.copyfile", "os.mkdir"):
        writes.append(f"{event}:{args[0]}")
sys.addaudithook(hook)
sizes = [len(load_gpqa(sys.argv[1], s, password=sys.argv[2])) for s in ("main", "diamond", "extended")]
during = list(writes)
open("control.txt", "w").close()  # the hook must see this one: proves it would have seen a GPQA write
print(sizes, during, writes[len(during):] == ["control.txt"])
sys.exit(0 if not during else 3)
"""


def test_gpqa_is_read_in_memory_only(gpqa_zip, gpqa_password, tmp_path):
    """A fresh interpreter with an audit hook sees no file opened for writing while all subsets load."""
    before = sorted(os.listdir(tmp_path))
    result = subprocess.run([sys.executable, "-c", _NO_WRITES, str(gpqa_zip), gpqa_password], cwd=tmp_path,
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert result.stdout.strip() == "[448, 198, 546] [] True"
    assert sorted(os.listdir(tmp_path)) == sorted([*before, "control.txt"])


# ------------------------------------------------------------------------------- shipped copies, fetching
def test_mmlu_gzipped_copy_equals_the_plain_csvs(repo_data, tmp_path):
    """The repository ships gzipped CSVs; unpacked, they load to the same questions and the same fingerprint."""
    shipped = load_mmlu(repo_data / "mmlu", split="dev")
    plain = tmp_path / "dev"
    plain.mkdir()
    files = sorted((repo_data / "mmlu" / "dev").glob("*_dev.csv.gz"))
    assert len(files) == 57
    for path in files:
        (plain / path.name.removesuffix(".gz")).write_bytes(gzip.decompress(path.read_bytes()))
    unpacked = load_mmlu(tmp_path, split="dev")
    assert unpacked.questions == shipped.questions and len(shipped) == 285
    assert unpacked.fingerprint == shipped.fingerprint
    (plain / "anatomy_dev.csv").write_text("question,choice0,choice1,choice2,choice3,answer\nq,a,b,c,d,0\n")
    assert load_mmlu(tmp_path, split="dev").fingerprint != shipped.fingerprint


def test_mmlu_truncated_gzip_is_named_and_the_other_subjects_load(repo_data, tmp_path):
    folder = tmp_path / "test"
    folder.mkdir()
    for subject in ("anatomy", "virology"):
        data = (repo_data / "mmlu" / "test" / f"{subject}_test.csv.gz").read_bytes()
        (folder / f"{subject}_test.csv.gz").write_bytes(data if subject == "anatomy" else data[: len(data) // 2])
    ds = load_mmlu(tmp_path)
    assert ds.subjects == ["anatomy"] and len(ds) == 135
    assert len(ds.problems) == 1 and "virology_test.csv.gz: unreadable gzip file" in ds.problems[0]


def _hub_layout(repo_data: Path, folder: Path, subjects: list[str]) -> None:
    """The cais/mmlu hub repository's layout (an ``all`` config of parquet files with question, subject,
    choices, answer), written from the shipped CSVs with the csv module alone."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows: dict[str, list] = {"question": [], "subject": [], "choices": [], "answer": []}
    for subject in subjects:
        text = gzip.decompress((repo_data / "mmlu" / "test" / f"{subject}_test.csv.gz").read_bytes()).decode()
        for record in list(csv.reader(io.StringIO(text)))[1:]:
            rows["question"].append(record[0])
            rows["subject"].append(subject)
            rows["choices"].append(record[1:5])
            rows["answer"].append(int(record[5]))
    (folder / "all").mkdir(parents=True)
    pq.write_table(pa.table(rows), folder / "all" / "test-00000-of-00001.parquet")
    (folder / "README.md").write_text("---\nconfigs:\n- config_name: all\n  data_files:\n  - split: test\n"
                                      "    path: all/test-*\n---\n")


def test_mmlu_hub_loader_offline_matches_the_shipped_copy(repo_data, tmp_path, monkeypatch):
    """The hub code path (``datasets.load_dataset(repo, "all")``) on a local folder in the hub's layout: no
    hub is reachable here, so the folder stands in for ``cais/mmlu``; the questions equal the shipped copy's."""
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    subjects = ["anatomy", "virology"]
    _hub_layout(repo_data, tmp_path / "cais-mmlu", subjects)
    hub = load_mmlu(f"hf:{tmp_path / 'cais-mmlu'}", subjects=subjects)
    shipped = load_mmlu(repo_data / "mmlu", subjects=subjects)
    assert len(hub) == len(shipped) == 301
    assert hub.questions == shipped.questions
    assert [q.id for q in hub] == [q.id for q in shipped]
    assert hub.source == f"hf:{tmp_path / 'cais-mmlu'}"


def test_fetch_gpqa_downloads_once_checks_the_sha256_and_never_half_writes(gpqa_zip, tmp_path):
    """``fetch_gpqa`` on a ``file://`` URL (the shipped zip) in place of the public release."""
    cache = tmp_path / "cache"
    url = gpqa_zip.resolve().as_uri()
    path = fetch_gpqa(url, cache_dir=cache)
    assert path == cache / "gpqa" / "dataset.zip"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == GPQA_SHA256
    assert len(load_gpqa(path, "diamond")) == 198
    # cached: no download at all (an unreachable URL would fail)
    assert fetch_gpqa("file:///nonexistent/dataset.zip", cache_dir=cache) == path
    # a corrupted cached copy is replaced
    path.write_bytes(b"not a zip")
    assert hashlib.sha256(fetch_gpqa(url, cache_dir=cache).read_bytes()).hexdigest() == GPQA_SHA256
    # another file is refused and leaves nothing behind
    other = tmp_path / "other.zip"
    other.write_bytes(b"PK\x05\x06" + bytes(18))
    with pytest.raises(ValueError, match="is not the official GPQA zip"):
        fetch_gpqa(other.as_uri(), cache_dir=tmp_path / "fresh")
    assert not (tmp_path / "fresh" / "gpqa" / "dataset.zip").exists()
    assert list((tmp_path / "fresh" / "gpqa").iterdir()) == []
    with pytest.raises(OSError, match="could not download the GPQA zip from file:///nonexistent"):
        fetch_gpqa("file:///nonexistent/dataset.zip", cache_dir=tmp_path / "fresh")


def test_fetch_gpqa_defaults_to_the_public_release_and_the_cache(monkeypatch, tmp_path):
    """Without arguments it asks the GPQA release for its zip and keeps it under ``$REASONIR_CACHE``; the
    network call is replaced here (no internet), the rest is the real code."""
    from reasonir_rag.eval import gpqa

    monkeypatch.setenv("REASONIR_CACHE", str(tmp_path))
    asked = []

    def refuse(url, timeout):
        asked.append(url)
        raise OSError("no network in the tests")

    monkeypatch.setattr(gpqa.urllib.request, "urlopen", refuse)
    with pytest.raises(OSError, match="could not download the GPQA zip"):
        fetch_gpqa()
    assert asked == [GPQA_RELEASE_URL] and GPQA_RELEASE_URL.startswith("https://")
    assert (tmp_path / "gpqa").is_dir()


def test_cli_gpqa_source_shipped_copy_or_a_url_into_the_cache(gpqa_zip, tmp_path, monkeypatch):
    from reasonir_rag.cli.eval import gpqa_source

    monkeypatch.setenv("REASONIR_CACHE", str(tmp_path))
    assert gpqa_source(None) == gpqa_zip  # the clone's own copy
    assert gpqa_source("some/where.zip") == Path("some/where.zip")
    fetched = gpqa_source(gpqa_zip.resolve().as_uri())
    assert fetched == tmp_path / "gpqa" / "dataset.zip" and fetched.read_bytes() == gpqa_zip.read_bytes()
    assert gpqa_source("official") == fetched  # cached: the public release is not asked again
