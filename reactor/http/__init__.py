"""HTTP/1.1: a sans-I/O parser, a router, a server protocol, static files and a client.

Read bottom up: ``parser.py`` (bytes -> request events; responses -> bytes),
``messages.py`` (the Request, Response and Headers a handler sees),
``router.py`` (method and path -> handler), ``server.py`` (one connection:
parser, router and transport joined), ``static.py`` (files under a root).
Serving::

    app = Router()

    @app.route("/hello/{name}")
    def hello(request):
        return Response(200, body="Hello, %s!\\n" % request.params["name"])

    loop = reactor.Reactor()
    loop.listen_http(app, "127.0.0.1", 8000)
    loop.run()
"""

from .messages import FileBody, Headers, Request, Response
from .options import HTTPOptions
from .parser import HTTPError
from .router import Route, Router

__all__ = ["FileBody", "Headers", "HTTPError", "HTTPOptions", "Request", "Response", "Route",
           "Router"]
