"""Heavy NLP stays out of the web process until needed (DESIGN §9)."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_web_app_and_cli_loads_no_nlp_models() -> None:
    probe = (
        "import sys, search_app, indexer.cli, indexer.library\n"
        "loaded = sorted(m for m in ('spacy', 'ginza', 'ja_ginza', 'thinc', 'torch') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
        "from indexer.analysis import analyzer\n"
        "assert analyzer._analyzer is None, 'the Sudachi dictionary loaded at import'\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=120)
