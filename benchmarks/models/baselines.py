"""Baselines without a framework: a thread per connection, a thread pool, prefork processes,
and the pure-Python floor (a hand-written selectors loop, TCP and UDP)."""

import os
import signal
import socket

from .registry import register
from .support import blocking_echo, listening_socket, ready

#: threadpool: worker threads, each serving one connection at a time
POOL_THREADS = 32


@register("threads", speaks=("echo",),
          note="socketserver.ThreadingTCPServer: a thread per connection")
def serve_threads(port, options):
    import socketserver
    import threading

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            blocking_echo(self.request)       # socketserver's later close is a no-op then

    class Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True
        request_queue_size = 1024

    server = Server(("127.0.0.1", port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    ready()
    server.serve_forever()


@register("threadpool", speaks=("echo",),
          note="concurrent.futures.ThreadPoolExecutor(max_workers=%d): each worker serves one "
               "blocking connection until it closes; connections beyond %d wait for a free "
               "worker (accepted, but not answered)" % (POOL_THREADS, POOL_THREADS))
def serve_threadpool(port, options):
    from concurrent.futures import ThreadPoolExecutor
    listener = listening_socket(port)
    # SIGTERM must reach the main thread, blocked in accept(): the workers block it. They
    # sit in recv() on open connections, so the handler leaves at once, joining none.
    pool = ThreadPoolExecutor(max_workers=POOL_THREADS, initializer=signal.pthread_sigmask,
                              initargs=(signal.SIG_BLOCK, {signal.SIGTERM}))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    ready()
    while True:
        conn, _ = listener.accept()
        pool.submit(blocking_echo, conn)


def die_with_parent(parent):
    """Ask Linux to SIGTERM this process when ``parent`` dies (prctl PR_SET_PDEATHSIG), so a
    killed prefork parent leaves no orphans; exit now if it is already gone."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass                                # not Linux: the parent's SIGTERM still stops us
    if os.getppid() != parent:
        os._exit(0)


@register("prefork", speaks=("echo",),
          note="2 x cores processes forked after binding, each a blocking accept() loop "
               "serving one connection at a time (the classic prefork model): connections "
               "beyond that many wait; CPU is counted over all the processes")
def serve_prefork(port, options):
    """The parent binds, forks, says ready and waits; on SIGTERM it passes SIGTERM to every
    child and reaps them all before it exits. A child also dies with its parent."""
    listener = listening_socket(port)
    parent, children = os.getpid(), []
    for _ in range(2 * (os.cpu_count() or 1)):
        pid = os.fork()
        if pid == 0:                        # a child: serve until killed, never return
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                die_with_parent(parent)
                while True:
                    conn, _ = listener.accept()
                    blocking_echo(conn)
            finally:
                os._exit(0)
        children.append(pid)
    listener.close()

    def stop(*_):
        for child in children:
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass
    signal.signal(signal.SIGTERM, stop)
    ready()
    for child in children:
        os.waitpid(child, 0)


@register("selectors-minimal", speaks=("echo",),
          note="the pure-Python floor: a hand-written selectors loop, no framework at all")
def serve_selectors_minimal(port, options):
    import selectors
    selector = selectors.DefaultSelector()
    listener = listening_socket(port)
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ, None)
    pending = {}                       # sock -> bytes not yet sent
    running = [True]
    signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))
    ready()
    while running[0]:
        for key, mask in selector.select(0.5):
            sock = key.fileobj
            if sock is listener:
                try:
                    conn, _ = listener.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                selector.register(conn, selectors.EVENT_READ, None)
                continue
            if mask & selectors.EVENT_WRITE:
                data = pending.pop(sock)
                sent = sock.send(data)
                if sent < len(data):
                    pending[sock] = data[sent:]
                else:
                    selector.modify(sock, selectors.EVENT_READ, None)
                continue
            try:
                data = sock.recv(65536)
            except ConnectionError:
                data = b""
            if not data:
                selector.unregister(sock)
                pending.pop(sock, None)
                sock.close()
                continue
            if sock in pending:
                pending[sock] += data
                continue
            try:
                sent = sock.send(data)
            except BlockingIOError:
                sent = 0
            if sent < len(data):
                pending[sock] = data[sent:]
                selector.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, None)


@register("selectors-minimal-udp", speaks=("echo-udp",),
          note="the floor: a bare selectors loop doing recvfrom / sendto")
def serve_selectors_minimal_udp(port, options):
    import selectors
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    sock.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    running = [True]
    signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))
    ready()
    while running[0]:
        for _ in selector.select(0.5):
            for _ in range(64):
                try:
                    data, address = sock.recvfrom(65536)
                except BlockingIOError:
                    break
                try:
                    sock.sendto(data, address)
                except BlockingIOError:
                    pass
