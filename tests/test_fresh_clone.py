"""A clone must work on its own: nothing tracked may read outside the repository, and the data it needs ships.

The newcomer check (``scripts/newcomer_check.sh``, run by CI) proves the same end to end in an isolated clone.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from reasonir_rag import sample_data

REPO = Path(__file__).resolve().parents[1]
_SH = "sha" + "red"  # spelled in two parts so that this file does not match its own patterns
OUTSIDE_THE_REPOSITORY = [
    r"\.\./" + _SH,  # the workplace's mirror beside the clone
    "REASONIR_" + _SH.upper(),
    rf"[\"']{_SH}[\"']\s*/\s*[\"']data[\"']",
    r"\bREPO\.parent\b",  # a sibling of the checkout
    r"parents\[\d\]\s*/\s*[\"']" + _SH,
]


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(),
                    reason="not a git checkout: the tracked files cannot be listed")
@pytest.mark.parametrize("pattern", OUTSIDE_THE_REPOSITORY)
def test_no_tracked_file_reads_outside_the_repository(pattern):
    found = _git("grep", "-n", "-I", "-E", pattern, "--", ".")
    assert found.returncode in (0, 1), found.stderr  # 1: no match
    assert found.stdout == "", f"tracked lines that point outside the repository ({pattern}):\n{found.stdout}"


def test_the_pattern_check_would_catch_a_reference(tmp_path):
    """The same patterns, on a file that does point at the mirror: each line is caught."""
    import re

    lines = ['DATA = REPO' + '.parent / "' + _SH + '" / "data"', "see ../" + _SH + "/data/mmlu",
             "os.environ['REASONIR_" + _SH.upper() + "_DATA']"]
    for line in lines:
        assert any(re.search(p, line) for p in OUTSIDE_THE_REPOSITORY), line


def test_the_shipped_data_is_complete_and_licensed():
    root = sample_data.data_root(sample_data.REPO_DATA)  # the repository's own copy, whatever $REASONIR_DATA says
    for folder in ("openstax", "mmlu", "gpqa", "scifact"):
        assert (root / folder / "PROVENANCE.md").is_file() and (root / folder / "LICENSE").is_file(), folder
    openstax = root / "openstax"
    books = [p.name for p in sample_data.jsonl_files(openstax)]
    assert books == [f"{b}.jsonl.gz" for b in sample_data.OPENSTAX_BOOKS]
    assert sum(1 for b in sample_data.OPENSTAX_BOOKS for _ in sample_data.openstax_records(b, openstax)) == 12396
    assert "non-commercial" in (root / "scifact" / "PROVENANCE.md").read_text().lower()
    tracked = _git("ls-files", "data").stdout.split() if (REPO / ".git").exists() else []
    if tracked:  # everything the readers use is committed, not just present here
        assert "data/gpqa/dataset.zip" in tracked and "data/mmlu/test/anatomy_test.csv.gz" in tracked


def test_data_root_names_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv(sample_data.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"nowhere does not exist \(\$REASONIR_DATA\); pass --data"):
        sample_data.data_root()
    monkeypatch.setenv(sample_data.ENV_VAR, str(tmp_path))
    assert sample_data.mmlu_dir() == tmp_path / "mmlu"
    assert sample_data.data_root(REPO / "data") == REPO / "data"  # an explicit folder wins over the variable
    with pytest.raises(FileNotFoundError, match="no OpenStax book 'biology'"):
        sample_data.openstax_book("biology", tmp_path)


def test_jsonl_files_takes_both_forms_once(tmp_path):
    for name in ("a.jsonl", "a.jsonl.gz", "b.jsonl.gz", "c.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in sample_data.jsonl_files(tmp_path)] == ["a.jsonl", "b.jsonl.gz"]
