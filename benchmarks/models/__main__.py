"""``python -m benchmarks.models NAME PORT [flags]``: run one model's server until SIGTERM.

It listens on 127.0.0.1:PORT. Echo-family servers print ``ready`` once they
accept (``harness.start_server`` waits for it); HTTP and WebSocket servers
print nothing and the suite waits until the port accepts. SIGTERM stops
every server (and a multi-process model's children). A model that cannot
run here prints ``skip: WHY`` on stderr and exits 2.

Flags: ``--protocol P`` (default: echo if the model speaks it, else its only
server), ``--root DIR`` (files to serve; implies http-static),
``--measure-idle`` (trace the heap; print ``idle HEAP RSS COUNT`` on
SIGUSR1), ``--measure-rss`` (the same untraced, heap 0), ``--idle-timeout S``
(echo-protected). Without arguments, list the models.
"""

import argparse
import sys

from . import PROTOCOLS, REGISTRY, Options


def list_models(registry, out=sys.stdout):
    """Print each model: its protocols, what it needs, whether it runs here, its notes."""
    for name, model in registry.models.items():
        why = registry.available(name)
        print("%-24s %s%s" % (name, ", ".join(model.speaks),
                              "" if why is None else "   [skipped here: %s]" % why), file=out)
        if model.needs:
            print("    needs: %s" % ", ".join(model.needs), file=out)
        for protocol, server in model.servers.items():
            if server.program is not None:
                print("    %s: runs %r on %s" % (protocol, server.program, server.loop),
                      file=out)
        notes = {}
        for protocol, server in model.servers.items():
            if server.note:
                notes.setdefault(server.note, []).append(protocol)
        for note, spoken in notes.items():
            print("    %s: %s" % (", ".join(spoken), note), file=out)
    print("\nprotocols:", file=out)
    for protocol, meaning in PROTOCOLS.items():
        print("  %-20s %s" % (protocol, meaning), file=out)


def parse(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.models",
                                     description="Run one benchmark model's server.")
    parser.add_argument("model")
    parser.add_argument("port", type=int)
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS))
    parser.add_argument("--root", metavar="DIR", help="serve these files (http-static)")
    parser.add_argument("--measure-idle", action="store_true")
    parser.add_argument("--measure-rss", action="store_true")
    parser.add_argument("--idle-timeout", type=float, default=300.0, metavar="S")
    return parser.parse_args(argv)


def main(argv=None, registry=REGISTRY):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("--list", "list"):
        list_models(registry)
        return 0
    args = parse(argv)
    protocol = args.protocol
    if args.root is not None and protocol in (None, "http"):
        protocol = "http-static"
    why = (registry.available(args.model, protocol) if args.model in registry.models
           else "no model named %r (python -m benchmarks.models lists them)" % args.model)
    if why is None:
        try:
            protocol, server = registry.server(args.model, protocol)
        except ValueError as exc:
            why = str(exc)
    if why is not None:
        print("skip: %s" % why, file=sys.stderr, flush=True)
        return 2
    options = Options(protocol=protocol, root=args.root,
                      measure_idle=args.measure_idle or args.measure_rss,
                      trace=args.measure_idle and not args.measure_rss,
                      idle_timeout=args.idle_timeout)
    server.serve(args.port, options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
