"""An evaluation set from your own corpus: ReasonIR's hard-query recipe, with checks it lacks (``synthesize``).

``import reasonir_rag.synth`` stays light: the classifier, BM25 and the LLM load when a run needs them.
"""

from __future__ import annotations

from reasonir_rag.offline import build_standin_edu_classifier  # the offline kit's, under its public name
from reasonir_rag.synth.calls import CallSettings
from reasonir_rag.synth.filters import FilterSettings, QueryFilter, copy_overlap
from reasonir_rag.synth.parse import parse_negative, parse_queries
from reasonir_rag.synth.run import SynthesisResult, SynthesisSettings, synthesize

__all__ = ["CallSettings", "FilterSettings", "QueryFilter", "SynthesisResult", "SynthesisSettings",
           "build_standin_edu_classifier", "copy_overlap", "parse_negative", "parse_queries", "synthesize"]
