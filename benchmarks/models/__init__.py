"""Every server the benchmark suites measure, in one registry.

A model is one way of writing a server; each is registered next to its
function (``@register`` in ``registry.py``) in the module of its family::

    reactor_models.py   reactor: echo, --workers, protected, TLS, UDP, framed
    asyncio_models.py   asyncio Protocol and streams: echo (on asyncio and reactor.aio), TLS,
                        UDP, framed
    baselines.py        threads, threadpool, prefork, selectors-minimal(-udp)
    third_party.py      uvloop (both echo programs), gevent, twisted, trio, curio (when
                        installed)
    http.py             HTTP/1.1: reactor, asyncio-floor, http.server, aiohttp (on asyncio,
                        uvloop, reactor.aio), uvicorn
    websocket.py        WebSocket: reactor, websockets, aiohttp

The API the suites use::

    MODELS[name] -> Model       .speaks (protocols), .needs (packages), .note
    models_for("echo") -> [names speaking echo, installed or not, in registration order]
    available(name[, protocol]) -> None, or why it cannot run here ("trio not installed")
    programs_for("echo") -> [(program, [(loop, name), ...])]: one asyncio program on
                            several loops (asyncio, uvloop, reactor.aio)

Each server runs in its own process: ``python -m benchmarks.models NAME PORT
[--protocol P] [--root DIR] [--measure-idle | --measure-rss] [--idle-timeout S]``
(``python -m benchmarks.models`` alone lists the registry). See
benchmarks/README.md, "How to add a model".
"""

from .registry import (
    MODELS, PROTOCOLS, REGISTRY, Model, Options, Registry, Server, available, models_for,
    programs_for, register)

# The families: importing each registers its models. Registration order is table order.
from . import reactor_models, asyncio_models, baselines, third_party, http, websocket  # noqa

from .reactor_models import BENCH_TOKEN        # the protected suite's token

__all__ = ["BENCH_TOKEN", "MODELS", "PROTOCOLS", "REGISTRY", "Model", "Options", "Registry",
           "Server", "available", "models_for", "programs_for", "register"]
