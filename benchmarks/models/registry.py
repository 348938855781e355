"""The model registry: which servers exist, what each speaks, what each needs installed.

A *model* is one way of writing a server (reactor, asyncio streams, a thread
per connection, prefork, uvloop ...). Each is registered next to its
function by the ``@register`` decorator, in the family module that holds it
(``reactor_models.py``, ``asyncio_models.py``, ``baselines.py``,
``third_party.py``, ``http.py``, ``websocket.py``)::

    @register("trio", speaks=("echo",), needs=("trio",),
              note="trio.serve_tcp, a task per connection")
    def serve_trio(port, options):
        ...

One name may be registered in several families for different protocols
(``reactor`` serves echo in reactor_models.py, HTTP in http.py, WebSocket in
websocket.py): it is one model, with one server function per protocol.
Suites ask ``models_for(protocol)`` for their list, in registration order,
and ``available(name)`` whether each can run here; a model whose package is
missing is skipped with that reason, never replaced by something else.

Some models are one asyncio *program* run on different event loops
(``support.ASYNCIO_LOOPS``): the Protocol echo is ``asyncio-protocol`` on
asyncio's loop, ``uvloop`` on uvloop and ``reactor-aio-protocol`` on
reactor.aio. Each says so when it registers (``program=``, ``loop=``), and
``programs_for(protocol)`` gives the suites those groups, so they can put
the loops side by side: the program is the same, the loop is the variable.
"""

import importlib.util
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

#: protocol -> what a server speaking it does (and which suite asks for it)
PROTOCOLS = {
    "echo": "TCP echo: every byte back, TCP_NODELAY on (echo and scaling suites)",
    "echo-tls": "TCP echo over TLS, tests/certs/server.pem (tls suite)",
    "echo-udp": "UDP echo: each datagram back to its sender (udp suite)",
    "echo-framed": "length-prefixed echo: 4-byte big-endian length, payload (framing suite)",
    "echo-protected": "echo behind a token line (BENCH_TOKEN) and limits that never bind "
                      "(protected suite)",
    "http": "HTTP/1.1 keep-alive, GET / answers 'Hello, world!' (http suite)",
    "http-static": "HTTP/1.1 keep-alive, the files of --root DIR (http suite, static scenario)",
    "websocket": "WebSocket echo, text as text and binary as binary (websocket suite)",
    "websocket-broadcast": "WebSocket members, and /control: 'go N' sends N x 64 B to every "
                           "member (websocket suite)",
}


class Options(NamedTuple):
    """What ``python -m benchmarks.models NAME PORT [flags]`` asked of a server function."""
    protocol: str = "echo"
    root: Optional[str] = None          #: --root DIR: the files to serve (http-static)
    measure_idle: bool = False          #: --measure-idle or --measure-rss: answer SIGUSR1
    trace: bool = False                 #: --measure-idle alone: trace the heap (tracemalloc)
    idle_timeout: float = 300.0         #: --idle-timeout S (echo-protected)


class Server(NamedTuple):
    """One registration: the function serving some protocols of a model."""
    serve: Callable[[int, Options], None]
    needs: Tuple[str, ...]              #: packages beyond the standard library
    note: str
    idle: bool                          #: it answers --measure-idle / --measure-rss
    program: Optional[str] = None       #: the asyncio program it runs on ``loop``, if one
    loop: Optional[str] = None          #: that program's event loop (support.ASYNCIO_LOOPS)


class Model:
    """A named model: per protocol, the server that speaks it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.servers: Dict[str, Server] = {}
        self.lacks: Dict[str, str] = {}    #: protocol -> why this model does not speak it

    @property
    def speaks(self) -> Tuple[str, ...]:
        return tuple(self.servers)

    @property
    def needs(self) -> Tuple[str, ...]:
        packages: List[str] = []
        for server in self.servers.values():
            packages += [name for name in server.needs if name not in packages]
        return tuple(packages)

    @property
    def note(self) -> str:
        notes: List[str] = []
        for server in self.servers.values():
            if server.note and server.note not in notes:
                notes.append(server.note)
        return "; ".join(notes)

    def __repr__(self) -> str:
        return "Model(%r, speaks=%r, needs=%r)" % (self.name, self.speaks, self.needs)


def missing_packages(packages: Sequence[str]) -> List[str]:
    """The ones of ``packages`` that cannot be imported here (found by find_spec alone)."""
    return [name for name in packages if importlib.util.find_spec(name) is None]


class Registry:
    """Models by name, and the order in which each protocol's servers were registered."""

    def __init__(self) -> None:
        self.models: Dict[str, Model] = {}
        self.order: List[Tuple[str, str]] = []      # (protocol, name), registration order

    def register(self, name: str, speaks: Sequence[str], needs: Sequence[str] = (),
                 note: str = "", idle: bool = False,
                 lacks: Optional[Dict[str, str]] = None, program: Optional[str] = None,
                 loop: Optional[str] = None) -> Callable:
        """Decorator: ``function(port, options)`` serves ``name`` for each of ``speaks``.

        ``needs``: packages beyond the standard library (checked with
        importlib.util.find_spec); ``idle``: the function answers
        --measure-idle; ``lacks``: {protocol: why not}, for a protocol the
        model's family speaks but it does not (asyncio-floor serves no files);
        ``program`` and ``loop``, given together: the function runs that
        asyncio program, written once, on that event loop (see
        ``programs_for``).
        """
        if isinstance(speaks, str) or not speaks:
            raise ValueError("%s: speaks is a tuple of protocols, got %r" % (name, speaks))
        unknown = [protocol for protocol in speaks if protocol not in PROTOCOLS]
        if unknown:
            raise ValueError("%s: unknown protocol %s (known: %s)"
                             % (name, ", ".join(unknown), ", ".join(PROTOCOLS)))
        if (program is None) != (loop is None):
            raise ValueError("%s: program and loop go together, got %r and %r"
                             % (name, program, loop))

        def add(function: Callable) -> Callable:
            if not callable(function):
                raise TypeError("%s: %r is not callable" % (name, function))
            model = self.models.setdefault(name, Model(name))
            server = Server(function, tuple(needs), note, idle, program, loop)
            for protocol in speaks:
                if protocol in model.servers:
                    raise ValueError("%s is registered twice for %s" % (name, protocol))
                if program is not None and self.program_model(protocol, program, loop):
                    raise ValueError("%s: %s already runs %r on %s" % (
                        name, self.program_model(protocol, program, loop), program, loop))
                model.servers[protocol] = server
                self.order.append((protocol, name))
            model.lacks.update(lacks or {})
            return function
        return add

    def available(self, name: str, protocol: Optional[str] = None) -> Optional[str]:
        """None if ``name`` can run here (for ``protocol``, when given), else why not:
        an unknown name, a protocol it does not speak, or the packages it needs that
        are not installed."""
        model = self.models.get(name)
        if model is None:
            return "no model named %r" % name
        if protocol is None:
            needs = model.needs
        elif protocol in model.servers:
            needs = model.servers[protocol].needs
        else:
            return model.lacks.get(protocol) or "%s does not speak %s" % (name, protocol)
        missing = missing_packages(needs)
        return "%s not installed" % ", ".join(missing) if missing else None

    def models_for(self, protocol: str, idle: bool = False) -> List[str]:
        """Names of the models speaking ``protocol`` (installed or not), in registration
        order; with ``idle``, only those that answer --measure-idle for it."""
        if protocol not in PROTOCOLS:
            raise ValueError("unknown protocol %r (known: %s)" % (protocol, ", ".join(PROTOCOLS)))
        return [name for spoken, name in self.order if spoken == protocol
                and (not idle or self.models[name].servers[protocol].idle)]

    def programs_for(self, protocol: str) -> List[Tuple[str, List[Tuple[str, str]]]]:
        """The asyncio programs registered on two or more loops for ``protocol``:
        [(program, [(loop, model name), ...]), ...], both in registration order
        (installed or not: ask ``available`` for each model)."""
        programs: Dict[str, List[Tuple[str, str]]] = {}
        for name in self.models_for(protocol):
            server = self.models[name].servers[protocol]
            if server.program is not None:
                programs.setdefault(server.program, []).append((server.loop, name))
        return [(program, loops) for program, loops in programs.items() if len(loops) >= 2]

    def program_model(self, protocol: str, program: str, loop: str) -> Optional[str]:
        """The model that runs ``program`` on ``loop`` for ``protocol``, or None."""
        for spoken, name in self.order:
            server = self.models[name].servers[spoken]
            if spoken == protocol and (server.program, server.loop) == (program, loop):
                return name
        return None

    def server(self, name: str, protocol: Optional[str] = None) -> Tuple[str, Server]:
        """(protocol, server) that ``python -m benchmarks.models NAME`` runs: the one for
        ``protocol``; without it, echo if the model speaks it, else its only function."""
        model = self.models[name]
        if protocol is None:
            functions = {server.serve for server in model.servers.values()}
            if "echo" in model.servers:
                protocol = "echo"
            elif len(functions) == 1:
                protocol = model.speaks[0]
            else:
                raise ValueError("%s speaks %s: say which with --protocol"
                                 % (name, ", ".join(model.speaks)))
        if protocol not in model.servers:
            raise ValueError(self.available(name, protocol))
        return protocol, model.servers[protocol]


#: The registry every family module registers into.
REGISTRY = Registry()
MODELS = REGISTRY.models
register = REGISTRY.register
available = REGISTRY.available
models_for = REGISTRY.models_for
programs_for = REGISTRY.programs_for
