"""ReasonIR's prompt formats and its per-task BRIGHT instructions.

ReasonIR (like GritLM) formats a query as ``<|user|>\\n{instruction}\\n<|embed|>\\n{query}`` and a
document as ``<|embed|>\\n{document}``. The BRIGHT instructions follow ReasonIR's evaluation configs:
a generic instruction drops BRIGHT nDCG@10 from 24.4 to about 20.5, so use the task's own. An empty
instruction (``""``) is GritLM's ``encode(instruction="")``: no prefix at all, every token (BOS too) pooled.
"""

from __future__ import annotations

from reasonir_rag.errors import InvalidInputError

QUERY_TEMPLATE = "<|user|>\n{instruction}\n<|embed|>\n"
DOCUMENT_PREFIX = "<|embed|>\n"
DEFAULT_INSTRUCTION = "Given a question, retrieve relevant passages that help answer the question"

# ReasonIR's BRIGHT configs fill the template with the RAW task id ("Given a earth_science post, ..."), not a
# display name: these strings carry ReasonIR's name, so they are its strings byte for byte.
_STACKEXCHANGE = ("biology", "earth_science", "economics", "psychology", "robotics", "stackoverflow",
                  "sustainable_living")
_POST = "Given a {task} post, retrieve relevant {unit} that help answer the post"
_SHORT = {task: _POST.format(task=task, unit="passages") for task in _STACKEXCHANGE}
_LONG = {task: _POST.format(task=task, unit="documents") for task in _STACKEXCHANGE}
_SHORT |= {
    "leetcode": "Given a coding problem, retrieve relevant examples that help answer the problem",
    "pony": "Given a pony question, retrieve relevant passages that help answer the question",
    "aops": "Given a Math problem, retrieve relevant examples that help answer the problem",
    "theoremqa_questions": "Given a Math problem, retrieve relevant examples that help answer the problem",
    "theoremqa_theorems": "Given a Math problem, retrieve relevant theorems that help answer the problem",
}
# BRIGHT's long-document setting exists for the StackExchange tasks and pony only.
_LONG["pony"] = "Given a pony question, retrieve relevant documents that help answer the question"

BRIGHT_TASKS: tuple[str, ...] = tuple(_SHORT)


def bright_instruction(task: str, *, long_documents: bool = False) -> str:
    """ReasonIR's query instruction for a BRIGHT task (``long_documents`` picks the long-document variant)."""
    table = _LONG if long_documents else _SHORT
    if task not in table:
        variant = "long-document " if long_documents else ""
        raise InvalidInputError(
            f"unknown {variant}BRIGHT task {task!r}; known: {', '.join(sorted(table))}"
        )
    return table[task]


def resolve_task(task: str) -> str:
    """Instruction for ``task``: a BRIGHT task name, with ``:long`` for the long-document variant."""
    name, _, variant = task.partition(":")
    if variant not in ("", "long", "short"):
        raise InvalidInputError(f"task variant must be ':long' or ':short', got {task!r}")
    return bright_instruction(name, long_documents=variant == "long")


def query_prefix(instruction: str) -> str:
    """The text placed before a query: ReasonIR's chat-style instruction block (``""`` for no instruction)."""
    return QUERY_TEMPLATE.format(instruction=instruction) if instruction else ""
