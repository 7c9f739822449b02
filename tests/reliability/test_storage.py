"""A Chroma folder that cannot take writes: on a read-only file system, on a full disk, not a database at all.

Real file systems, not patched errors: each scenario runs in a private mount namespace (``unshare -m`` as root,
``unshare -rm`` otherwise) on a small tmpfs that is remounted read-only or filled by the ingest itself. Without a
mount namespace (no ``unshare``, user namespaces disabled) these tests are skipped and say so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from reasonir_rag.index.storage import folder_state, storage_problem
from tests.reliability.conftest import REPO

ATTEMPT = r"""
import json, sys
import numpy as np
from reasonir_rag.encoding.recorded import RecordedEncoder
from reasonir_rag.index.store import ChromaStore

folder, n, first = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fingerprint = {"model": "recorded-test", "weights": "none", "dim": 8, "preset": "reasonir"}
try:
    store = ChromaStore("kb0", encoder=RecordedEncoder(fingerprint), path=folder)
    ids = [f"d{i}" for i in range(first, first + n)]
    stats = store.add_embeddings(ids, [f"text {i} " * 150 for i in range(n)], np.random.rand(n, 8))
    print(json.dumps({"ok": True, "added": stats.added, "rejected": len(stats.rejected), "count": store.count()}))
except Exception as exc:
    print(json.dumps({"ok": False, "type": type(exc).__name__, "message": str(exc),
                      "classes": [c.__name__ for c in type(exc).__mro__]}))
"""

# each attempt in its own process: chromadb keeps its files open, and a busy mount cannot be remounted read-only
SCENARIO = r"""
import json, subprocess, sys

attempt_code, mnt = sys.argv[1], sys.argv[2]
out = {}

def attempt(name, folder, n, first=0):
    done = subprocess.run([sys.executable, "-c", attempt_code, folder, str(n), str(first)], capture_output=True,
                          text=True, timeout=300)
    out[name] = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {"crash": done.stderr}

def mount(*args):
    subprocess.run(["mount", *args], check=True)

mount("-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt)
attempt("create", f"{mnt}/db", 20)
mount("-o", "remount,ro", mnt)
attempt("read-only existing", f"{mnt}/db", 5, 100)
attempt("read-only new", f"{mnt}/db-new", 5)
search = subprocess.run([sys.executable, "-m", "reasonir_rag", "search", "a question", "--collection", "kb0",
                         "--path", f"{mnt}/db"], capture_output=True, text=True, timeout=300)
out["cli search"] = {"rc": search.returncode, "stderr": search.stderr}
mount("-o", "remount,rw", mnt)
attempt("full", f"{mnt}/db", 3000, 1000)
print(json.dumps(out))
"""

def _namespace() -> list[str] | None:
    if shutil.which("unshare") is None:
        return None
    prefix = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-rm"]
    probe = subprocess.run([*prefix, "true"], capture_output=True)
    return prefix if probe.returncode == 0 else None


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict:
    prefix = _namespace()
    if prefix is None:
        pytest.skip("needs a private mount namespace (unshare -m / -rm) to make a read-only or a full file system")
    mnt = tmp_path_factory.mktemp("small-disk")
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([*prefix, sys.executable, "-c", SCENARIO, ATTEMPT, str(mnt)], capture_output=True,
                          text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_read_only_folder_is_one_storage_error_naming_it(outcomes):
    """An existing database and a new one on a read-only mount: a StorageError (an OSError) that names the folder,
    says read-only and what to do, from the Python API; one line and exit 2 from the CLI, before a model loads."""
    assert outcomes["create"] == {"ok": True, "added": 20, "rejected": 0, "count": 20}
    for name in ("read-only existing", "read-only new"):
        got = outcomes[name]
        assert not got["ok"] and got["type"] == "StorageError" and "OSError" in got["classes"], got
        assert "/db" in got["message"] and "is read-only" in got["message"] and "writable folder" in got["message"]
    search = outcomes["cli search"]
    lines = [line for line in search["stderr"].splitlines() if line.strip()]
    assert search["rc"] == 2 and len(lines) == 1 and "Traceback" not in search["stderr"], search
    assert lines[0].startswith("reasonir-rag search: error: ") and "is read-only" in lines[0]


def test_a_full_disk_stops_the_ingest_at_once_and_says_how_far_it_got(outcomes):
    """3000 records into a 3 MB tmpfs: the first batch Chroma cannot write stops the add with a StorageError that
    says the disk is full and how many of the add's documents are stored. No record is 'rejected' one by one
    (without the check each of ~1000 records failed slowly in turn, as if Chroma refused its content)."""
    got = outcomes["full"]
    assert not got["ok"] and got["type"] == "StorageError", got
    assert "is full" in got["message"] and "free some space" in got["message"]
    assert "of the 3000 documents of this add() are stored" in got["message"]
    assert "Run the same add() again to resume" in got["message"]


def test_storage_signs_in_chromas_own_messages_and_in_the_folder(tmp_path):
    """The messages Chroma 1.5 gives (seen on the mounts above) map to their state; a healthy folder has none."""
    assert storage_problem(RuntimeError("error returned from database: (code: 8) attempt to write a readonly "
                                        "database"), None) == "read-only"
    assert storage_problem(RuntimeError("Query error: Database error: error returned from database: (code: 13) "
                                        "database or disk is full"), None) == "full"
    assert storage_problem(RuntimeError("Read-only file system (os error 30)"), None) == "read-only"
    assert storage_problem(ValueError("Expected metadata key to be a non-empty string"), tmp_path) is None
    assert storage_problem(RuntimeError("Forbidden: permission denied"), None) is None  # a server's auth, not disk
    assert storage_problem(RuntimeError("Forbidden: permission denied"), tmp_path) == "not writable"
    assert folder_state(tmp_path) is None and folder_state(tmp_path / "not" / "made" / "yet") is None
