"""An echo server and its client written with async/await, running on reactor's loop.

Teaches: coroutines on reactor (``reactor.aio.run``); asyncio's streams
(``start_server`` gives each connection a reader and a writer, and
``open_connection`` is the client's pair); ``await writer.drain()`` as
backpressure, the ``pause_writing`` of examples/echo_server.py written as
a wait; and ``asyncio.wait_for``, a deadline kept by reactor's timer wheel.

Run it from the repository root, then type lines into ``nc``::

    python3 examples/aio_echo.py              # serves 127.0.0.1:7110; Ctrl-C stops it
    nc 127.0.0.1 7110
    python3 examples/aio_echo.py client       # sends three lines to it, prints the echoes
    python3 examples/aio_echo.py --selftest   # 20 clients and 1 MiB in one process, check, exit
"""
import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import reactor.aio  # noqa: E402  (found in the checkout above, no install needed)

PORT = 7110


async def echo(reader, writer):                      # one coroutine per connection
    while True:
        data = await reader.read(65536)              # suspended here until bytes or EOF
        if not data:
            break
        writer.write(data)
        await writer.drain()                         # waits while the client is not reading
    writer.close()
    await writer.wait_closed()


async def client(port, messages):
    """Send each message and wait, at most 5 s, for its echo; return the echoes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    echoes = []
    for message in messages:
        writer.write(message)
        echoes.append(await asyncio.wait_for(reader.readexactly(len(message)), timeout=5))
    writer.close()
    await writer.wait_closed()
    return echoes


async def selftest(port):
    big = bytes(range(256)) * 4096                   # 1 MiB: drain() really waits
    batches = [[b"client %d line %d\n" % (n, i) for i in range(3)] for n in range(20)] + [[big]]
    echoes = await asyncio.gather(*(client(port, batch) for batch in batches))
    assert echoes == batches
    print("selftest ok: %d clients echoed on %s" % (len(batches),
                                                     type(asyncio.get_running_loop()).__name__))


async def main(role):
    if role == "client":
        for echo_line in await client(PORT, [b"hello\n", b"from\n", b"a coroutine\n"]):
            print(echo_line.decode(), end="")
        return
    server = await asyncio.start_server(echo, "127.0.0.1", 0 if role == "--selftest" else PORT)
    port = server.sockets[0].getsockname()[1]
    print("listening on 127.0.0.1:%d" % port)
    async with server:                               # closes the listening socket at the end
        if role == "--selftest":
            await asyncio.wait_for(selftest(port), timeout=10)
        else:
            await server.serve_forever()


if __name__ == "__main__":
    try:
        reactor.aio.run(main((sys.argv[1:] or ["server"])[0]))
    except KeyboardInterrupt:
        pass
