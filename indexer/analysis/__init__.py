"""The one Japanese analyzer (DESIGN §2): normalization, SudachiPy token streams for the engines,
query terms and escaped highlights. Imports nothing else of ours.

    analyzer = get_analyzer()                  # one per process: one Dictionary, a Tokenizer per thread
    analyzer.analyze(text).joined()            # {"c": ..., "a": ..., "r": ..., "b": ...} for the engine
    analyzer.query_terms("附属図書館 とうきょう")  # one QueryTerm per content word
    analyzer.phrase("東京都庁の図書館")           # a quoted phrase
    make_snippet(body, terms)                  # escaped HTML with <mark>
"""

from indexer.analysis.analyzer import (
    Analyzer,
    AnalyzerUnavailable,
    FieldTokens,
    QueryTerm,
    get_analyzer,
)
from indexer.analysis.highlight import make_snippet
from indexer.analysis.normalize import Normalized

__all__ = [
    "Analyzer",
    "AnalyzerUnavailable",
    "FieldTokens",
    "Normalized",
    "QueryTerm",
    "get_analyzer",
    "make_snippet",
]
