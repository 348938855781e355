"""A rate-limited HTTP API: a token bucket per client, and 429 Too Many Requests past it.

Teaches: a token bucket (``burst`` tokens, ``per_second`` more each second,
one per request) kept as a single timestamp per client, the time it is full
again (GCRA, as ``reactor/protect/ratelimit.py`` keeps it), so no timer
refills it: the handler reads ``loop.time()`` when a request comes. Past
the bucket, a polite refusal: 429 with ``Retry-After``. Clients are told
apart by ``X-Api-Key`` (else by address). reactor's own rates,
``Limits(rate_messages=Rate(...))``, act below HTTP: they slow a flooding
socket down instead of answering it (docs/PROTECTIONS.md).

    python3 examples/rate_limited_api.py             # http://127.0.0.1:7108/api/time
    for i in 1 2 3 4 5 6 7; do curl -s http://127.0.0.1:7108/api/time; done
    python3 examples/rate_limited_api.py --selftest  # alice floods, gets 429s; bob does not
"""
import math
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import reactor  # noqa: E402  (found in the checkout above, no install needed)
from reactor.http import Response, Router  # noqa: E402
from reactor.http.client import http_request  # noqa: E402

PORT, RATE = 7108, reactor.Rate(per_second=1, burst=5)
app = Router()
full_at = {}          # client -> when its bucket is full again (unbounded here; prune in real use)


def spend_token(client, now):
    """Take one token from ``client``'s bucket; return 0.0, or the seconds until one is there."""
    after = max(full_at.get(client, now), now) + 1 / RATE.per_second
    wait_seconds = after - now - RATE.burst / RATE.per_second
    if wait_seconds > 1e-9:                     # (less is float rounding, not a debt)
        return wait_seconds                     # refused: the bucket is left as it was
    full_at[client] = after
    return 0.0


@app.route("/api/time")
def api_time(request):
    client = request.headers.get("X-Api-Key") or request.client[0]
    wait_seconds = spend_token(client, reactor.get_running_loop().time())
    if wait_seconds:
        return Response(429, [("Retry-After", str(math.ceil(wait_seconds)))],
                        "too many requests from %s; retry in %.1f s\n" % (client, wait_seconds))
    return {"client": client, "time": time.time()}


statuses = {"alice": [], "bob": []}


def ask(loop, port, key):
    def done(response, error):
        if error is not None:
            sys.exit("request failed: %s" % error)
        statuses[key].append(response.status)
        print("%s: %d %s" % (key, response.status, response.body.decode().strip()))
        if sum(map(len, statuses.values())) == 10:
            loop.stop()
    http_request(loop, "GET", "http://127.0.0.1:%d/api/time" % port,
                 headers={"X-Api-Key": key}, on_response=done)


if __name__ == "__main__":
    loop = reactor.Reactor()
    server = loop.listen_http(app, "127.0.0.1", 0 if "--selftest" in sys.argv else PORT)
    print("serving http://127.0.0.1:%d/api/time" % server.addresses[0][1])
    if "--selftest" in sys.argv:                 # 8 requests at once from alice, 2 from bob
        for key in ["alice"] * 8 + ["bob"] * 2:
            ask(loop, server.addresses[0][1], key)
        loop.call_later(10, sys.exit, "selftest timed out")
    loop.run()
    if "--selftest" in sys.argv:                 # a burst of 5 for each; alice's last 3 wait
        assert sorted(statuses["alice"]) == [200] * 5 + [429] * 3, statuses
        assert statuses["bob"] == [200, 200], statuses
        print("selftest ok")
