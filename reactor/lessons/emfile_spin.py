"""The EMFILE accept spin: out of file descriptors, a level-triggered loop burns a core.

Every accepted connection costs a file descriptor, and a process has a
limit (``ulimit -n``, RLIMIT_NOFILE). At the limit ``accept()`` fails with
EMFILE, but the connection it was meant to take *stays in the backlog*, so
the listening socket is still readable and a level-triggered selector
(select, poll, epoll by default) reports it again at once; ``accept()``
fails again, and so on: a core spent doing nothing, while the clients in
the backlog hang with no answer until they time out.

The fix (libev's and libuv's trick, in reactor's ``Acceptor``): keep one
spare fd open for this moment. On EMFILE, close the spare, accept the
pending connection and close it at once (that client gets a prompt close
instead of a hang), reopen the spare, and stop watching the listening
socket for a back-off (0.1 s), shedding one client per back-off until fds
are free again.

The lesson runs each server in a child process with RLIMIT_NOFILE at 32
(ours is never touched), opens 40 clients that each say hello, and waits
``seconds``. It reports the child's loop passes and CPU time, what each
client saw (an answer, a close, or nothing), and, once the clients have
gone, whether the server answers again.
"""

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Dict, List

import reactor

from . import Outcome

TITLE = "EMFILE spin: out of fds, accept() fails and the loop spins at 100% CPU"
PREVENTED_BY = ("accept.py:Acceptor._out_of_fds", "accept.py:_open_spare_fd",
                "accept.py:Acceptor._pause")
PROVED_BY = ("tests/test_out_of_fds.py::test_out_of_fds_server_sheds_load_without_spinning_and_recovers",)

FD_LIMIT = 32
CLIENTS = 40
SPINNING_PASSES_PER_SECOND = 1000     # an idle loop passes a few dozen times a second
BUSY_CPU_SHARE = 0.3                  # CPU seconds per wall second


def run(seconds: float) -> List[Outcome]:
    """Run each server in a child at a 32-fd limit, under 40 clients, for ``seconds``."""
    return [_judge("naive", seconds), _judge("reactor", seconds)]


def _judge(side: str, seconds: float) -> Outcome:
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    child = subprocess.Popen([sys.executable, "-m", "reactor.lessons.emfile_spin", "--side", side],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=package_root)
    clients: List[socket.socket] = []
    try:
        port = int(_read_line(child, 20) or b"0")
        if not port:
            raise RuntimeError("the %s server did not start: %s" % (side, child.stderr.read()))
        for _ in range(CLIENTS):
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            clients[-1].sendall(b"hello")
        time.sleep(seconds)
        seen = [_what_client_saw(client) for client in clients]
        while clients:                         # frees the server's fds
            clients.pop().close()
        recovered = _served_again(port, timeout=3.0)
    finally:
        while clients:
            clients.pop().close()
        child.send_signal(signal.SIGTERM)      # a no-op if it has exited
        try:
            out, err = child.communicate(timeout=10)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    report: Dict[str, Any] = json.loads(out.splitlines()[-1]) if out.strip() else {}
    if not report:
        raise RuntimeError("the %s server reported nothing: %s" % (side, err.decode()[-500:]))
    wall = max(report["wall seconds"], 1e-3)
    passes_per_second = round(report["loop passes"] / wall)
    figures: Dict[str, object] = dict(report)
    figures.update({"loop passes per second": passes_per_second,
                    "clients answered": seen.count("answered"),
                    "clients closed promptly": seen.count("closed"),
                    "clients left hanging": seen.count("hanging"),
                    "answered again once fds were free": recovered})
    spinning = (passes_per_second > SPINNING_PASSES_PER_SECOND
                or report["CPU seconds"] / wall > BUSY_CPU_SHARE)
    if spinning:
        verdict = ("{:,} loop passes a second, {:.2f} CPU s in {:.2f} s, {} clients left hanging: "
                   "accept() failed and select() reported the listening socket again at once"
                   .format(passes_per_second, report["CPU seconds"], wall, seen.count("hanging")))
    else:
        verdict = ("{:.2f} CPU s in {:.2f} s; {} pending clients closed promptly, {} still "
                   "waiting; answered again once fds were free: {}".format(
                       report["CPU seconds"], wall, seen.count("closed"), seen.count("hanging"),
                       recovered))
    ok = not spinning and (side == "naive" or seen.count("closed") >= 1 and recovered)
    return Outcome(side, figures, verdict, ok)


def _what_client_saw(client: socket.socket) -> str:
    client.setblocking(False)
    try:
        return "answered" if client.recv(100) else "closed"
    except BlockingIOError:
        return "hanging"
    except OSError:                            # reset: closed as well
        return "closed"


def _served_again(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=timeout) as client:
                client.sendall(b"again")
                if client.recv(100) == b"again":
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def _read_line(child: subprocess.Popen, timeout: float) -> bytes:
    with selectors.DefaultSelector() as selector:
        selector.register(child.stdout, selectors.EVENT_READ)   # never wait for ever
        return child.stdout.readline() if selector.select(timeout) else b""


# -- the two servers, each run in its own child process ------------------------------------

def _naive_main(stopping: List[bool]) -> Dict[str, Any]:
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    print(listener.getsockname()[1], flush=True)
    passes = failed_accepts = 0
    while not stopping:
        passes += 1
        for key, _ in selector.select(0.05):
            if key.fileobj is listener:
                try:
                    conn, _ = listener.accept()
                except OSError:                # EMFILE
                    failed_accepts += 1        # WRONG: the connection is still in the backlog,
                    continue                   # so select() reports the listener again at once
                conn.setblocking(False)
                selector.register(conn, selectors.EVENT_READ)
                continue
            try:
                data = key.fileobj.recv(4096)
                key.fileobj.send(data)
            except OSError:
                data = b""
            if not data:
                selector.unregister(key.fileobj)
                key.fileobj.close()
    return {"loop passes": passes, "accept() calls that failed": failed_accepts}


def _reactor_main(stopping: List[bool]) -> Dict[str, Any]:
    class Echo(reactor.Protocol):
        def data_received(self, data: bytes) -> None:
            self.transport.write(data)
    loop = reactor.Reactor()
    server = loop.listen_tcp(Echo, "127.0.0.1", 0)
    print(server.addresses[0][1], flush=True)
    loop.run()                                  # until SIGTERM
    stats = server.stats()
    return {"loop passes": loop.stats()["iterations"],
            "out-of-fds episodes": stats["out_of_fds_episodes"],
            "connections shed with the spare fd": stats["rejected_out_of_fds"]}


def main() -> None:
    """Run one side's server at a 32-fd limit until SIGTERM; print its figures as JSON."""
    import resource
    side = sys.argv[sys.argv.index("--side") + 1]            # naive | reactor
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(FD_LIMIT, hard), hard))
    stopping: List[bool] = []                                # (reactor's run() has its own)
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    started, cpu = time.monotonic(), time.process_time()
    figures = (_naive_main if side == "naive" else _reactor_main)(stopping)
    figures.update({"CPU seconds": round(time.process_time() - cpu, 3),
                    "wall seconds": round(time.monotonic() - started, 3)})
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
