#!/usr/bin/env bash
# The newcomer check: does a fresh clone work on a machine that has never seen this repository's neighbours?
#
# Clones HEAD into an empty temporary folder (no sibling folders), gives it an empty HOME (no caches, no
# converted models, no pip config of ours) and no REASONIR_* / Hugging Face variables, builds a fresh .venv with
# `make demo` at smoke size (every stage: index, rewrite, retrieve, rerank, read, evaluate), then runs the demo
# again and asserts that the second run encodes nothing and makes no LLM call. Only pip's download cache is
# reused (CI reaches the package registries and nothing else). Exits non-zero, with the log's tail, on any failure.
#
#   bash scripts/newcomer_check.sh            # NEWCOMER_KEEP=1 keeps the temporary folder for a look
#   NEWCOMER_DEMO_ARGS=--no-progress NEWCOMER_TIMEOUT=1800 bash scripts/newcomer_check.sh   # the full-size demo
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
LIMIT_S="${NEWCOMER_TIMEOUT:-900}"  # per stage
DEMO_ARGS="${NEWCOMER_DEMO_ARGS:---smoke --no-progress}"
pip_cache="${PIP_CACHE_DIR:-$("$PYTHON" -m pip cache dir 2>/dev/null || true)}"

work="$(mktemp -d "${TMPDIR:-/tmp}/reasonir-newcomer.XXXXXX")"
if [[ "${NEWCOMER_KEEP:-0}" != 1 ]]; then trap 'rm -rf "$work"' EXIT; fi
clone="$work/alone/reasonir-rag"  # its parent holds nothing else: ../anything does not exist
home="$work/home"
mkdir -p "$home" "$(dirname "$clone")"
git clone --quiet --no-hardlinks "$ROOT" "$clone"
echo "newcomer check: $(git -C "$clone" log -1 --format='%h %s') in $clone, HOME=$home"

# a newcomer's environment: nothing of ours, no model caches pointing elsewhere
for var in $(compgen -e); do
    case "$var" in
        REASONIR_*|HF_*|HUGGINGFACE_*|TRANSFORMERS_*|XDG_*|TORCH_HOME|SENTENCE_TRANSFORMERS_HOME|VIRTUAL_ENV|PYTHONPATH|CONDA_PREFIX)
            unset "$var" ;;
    esac
done
export HOME="$home"
[[ -n "$pip_cache" ]] && export PIP_CACHE_DIR="$pip_cache"

log="$work/demo.log"
fail() {
    echo "newcomer check FAILED: $1" >&2
    echo "---- last 60 lines of the log ($log) ----" >&2
    tail -n 60 "$log" >&2 || true
    exit 1
}
stage() {  # stage NAME COMMAND...: run, time, log
    local name="$1"; shift
    local start=$SECONDS
    if ! (cd "$clone" && timeout "$LIMIT_S" "$@") >>"$log" 2>&1; then
        fail "$name: '$*' failed"
    fi
    echo "  $name: $((SECONDS - start)) s"
}

stage "install (make demo's venv)" make .venv/.installed-demo
stage "first demo run" make demo DEMO_ARGS="$DEMO_ARGS"
cp "$clone/.demo/summary.json" "$work/first.json"
stage "second demo run" make demo DEMO_ARGS="$DEMO_ARGS"

"$clone/.venv/bin/python" - "$work/first.json" "$clone/.demo/summary.json" "$home" <<'PY' || fail "the runs did not do what they should"
import json, pathlib, sys

first, second = (json.loads(pathlib.Path(p).read_text()) for p in sys.argv[1:3])
home = pathlib.Path(sys.argv[3])
problems = []
if not (first["index"]["encoded"] > 0 and first["index"]["count"] == first["index"]["encoded"]):
    problems.append(f"first run: expected a fresh index, got {first['index']}")
if not (first["showcase"] >= 1 and first["eval_questions"] >= 1 and first["llm_calls"]["generate"] > 0
        and first["llm_calls"]["score"] > 0):
    problems.append(f"first run: expected every stage (rewrite, rerank, read, eval), got {first}")
if second["index"]["encoded"] != 0 or second["index"]["unchanged"] != first["index"]["count"]:
    problems.append(f"second run encoded passages again: {second['index']}")
if second["llm_calls"] != {"generate": 0, "score": 0} or second["journal"]["added"] != 0:
    problems.append(f"second run called the LLM: {second['llm_calls']}, journal {second['journal']}")
if not (home / ".cache" / "reasonir-rag" / "smollm2-135m-instruct" / "config.json").is_file():
    problems.append("SmolLM2 was not converted into the empty HOME's cache (did something reuse another cache?)")
for p in problems:
    print("  -", p)
print(f"  first run: {first['index']['encoded']} passages encoded, LLM calls {first['llm_calls']}, "
      f"{first['showcase']} shown, {first['eval_questions']} evaluated; second run: "
      f"{second['index']['unchanged']} reused, LLM calls {second['llm_calls']}")
sys.exit(1 if problems else 0)
PY
echo "newcomer check passed"
