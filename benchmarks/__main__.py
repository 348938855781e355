"""``python -m benchmarks [SUITE] [--quick] [--json FILE]``: list or run a suite.

Also ``python -m benchmarks all [--quick] [--report DIR]`` (every suite, one report:
``all.py``), ``python -m benchmarks compare OLD.json NEW.json`` (the ratio per cell) and
``python -m benchmarks summary DIR --into docs/BENCHMARKS.md`` (a run's summary and charts
into a doc).
"""

import argparse
import importlib
import sys

#: suite name -> (module, one-line summary)
SUITES = {
    "loop": ("benchmarks.loop", "timers, call_soon dispatch and idle fds: reactor vs asyncio vs heapq"),
    "echo": ("benchmarks.echo", "TCP echo: reactor vs asyncio, threads, a bare selectors loop, ..."),
    "framing": ("benchmarks.framing", "framer decode vs asyncio StreamReader; framed echo"),
    "tls": ("benchmarks.tls", "TLS echo and handshakes/s: reactor vs asyncio's TLS"),
    "udp": ("benchmarks.udp", "UDP echo: reactor vs asyncio DatagramProtocol vs a bare loop"),
    "http": ("benchmarks.web", "HTTP keep-alive: reactor vs http.server, aiohttp, uvicorn"),
    "websocket": ("benchmarks.websocket", "WebSocket echo and broadcast vs websockets, aiohttp"),
    "resp": ("benchmarks.resp", "kv vs redis-server under redis-benchmark; RSS with 1M keys"),
    "chat-redis": ("benchmarks.chat_redis", "chat fan-out through Redis pub/sub: two chat "
                   "processes against one (messages/s)"),
    "protected": ("benchmarks.protected", "echo with every protection on vs off: the cost of "
                  "limits, rates and auth"),
    "scaling": ("benchmarks.scaling", "echo req/s and p99 from 1 to 10,000 connections, by "
                "model"),
    "all": ("benchmarks.all", "every comparison suite, then report.md, results.json and SVG "
            "charts (--report DIR)"),
    "attacks": ("benchmarks.attacks", "the attack report's hostile clients against a live server "
                "(--tree DIR to run them against another checkout)"),
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["compare"]:
        from .report.compare import main as compare_main
        return compare_main(argv[1:])
    if argv[:1] == ["summary"]:
        from .report.embed import main as summary_main
        return summary_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description="Run a benchmark suite and print a table.")
    parser.add_argument("suite", nargs="?", choices=sorted(SUITES), help="suite to run")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.add_argument("--repeat", type=int, default=None, help="runs per measurement (median)")
    parser.add_argument("--json", metavar="FILE", help="also write raw results as JSON")
    args, extra = parser.parse_known_args(argv)
    if args.suite is None:
        print("suites (python -m benchmarks SUITE [--quick] [--json FILE]); "
              "compare OLD.json NEW.json; summary DIR [--into DOC]:")
        for name, (_, summary) in sorted(SUITES.items()):
            print("  %-10s %s" % (name, summary))
        return 0
    if args.suite == "echo" and "--protected" in extra:
        args.suite = "protected"                        # the older spelling of that suite
    if args.suite in ("echo", "http") and "--workers" in extra:
        module = importlib.import_module("benchmarks.workers")    # one process vs N workers
    else:
        module = importlib.import_module(SUITES[args.suite][0])
    return module.main(args, extra) or 0


if __name__ == "__main__":
    sys.exit(main())
