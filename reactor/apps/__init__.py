"""The servers behind ``python -m reactor``: one module per subcommand.

``SUBCOMMANDS`` maps a name to ``(summary, configure(parser), run(args))``;
``reactor/cli.py`` builds the command line from it.
"""

from typing import Any, Callable, Dict, Tuple

from . import chat, echo, http, kv, lesson, trace_report

SUBCOMMANDS: Dict[str, Tuple[str, Callable[[Any], None], Callable[[Any], int]]] = {
    "echo": (echo.SUMMARY, echo.configure, echo.run),
    "chat": (chat.SUMMARY, chat.configure, chat.run),
    "kv": (kv.SUMMARY, kv.configure, kv.run),
    "http": (http.SUMMARY, http.configure, http.run),
    "lesson": (lesson.SUMMARY, lesson.configure, lesson.run),
    "trace-report": (trace_report.SUMMARY, trace_report.configure, trace_report.run),
}
