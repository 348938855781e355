"""Reports of a whole benchmark run: results.json (schema), report.md and SVG charts, and compare.

``python -m benchmarks all --report DIR`` calls ``write_report``;
``python -m benchmarks compare OLD.json NEW.json`` calls ``compare.main``;
``python -m benchmarks summary DIR --into DOC`` calls ``embed.main``.
Standard library only. The results format is documented in ``schema.py``.

Note: ``compare`` here is the function; the command's entry point is
``compare_main`` (the same as ``from benchmarks.report.compare import main``).
"""

from .compare import compare, main as compare_main
from .document import summary_markdown, summary_rows, write_report
from .schema import SCHEMA_VERSION, load, validate

__all__ = ["SCHEMA_VERSION", "compare", "compare_main", "load", "summary_markdown",
           "summary_rows", "validate", "write_report"]
