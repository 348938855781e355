"""Prefork workers: one supervisor, N worker processes, each with its own loop, one port.

One loop uses one core. To use more, run several loops in several
processes that accept on the same port, the way nginx, HAProxy and
gunicorn's arbiter do. Nothing is shared between workers but the
listening sockets; each worker's loop, connections and state are its own::

    supervisor: binds, forks, restarts, reloads; accepts nothing, serves nothing
      |  holds every listening socket for the workers' whole life
      +-- socketpair --  worker 0   own loop, accepts on listening set 0
      +-- socketpair --  worker 1   own loop, accepts on listening set 1
      ...

**The listening sockets.** Where the platform has ``SO_REUSEPORT``, each
worker *slot* gets its own socket bound to the same port, and the kernel
spreads new connections over them by a hash of the addresses; elsewhere
every worker shares one socket inherited through fork (the kernel wakes
them all, and one wins each ``accept``). Either way the *supervisor*
binds them and keeps them open, and a new worker for a slot inherits the
slot's socket. A trap this avoids: with one SO_REUSEPORT socket per worker
*process*, an old worker closing its socket resets every connection still
queued on it (Linux without ``tcp_migrate_req``). Here an old worker's
close only drops its copy; the queue lives on, and the slot's new worker
accepts from it.

**Signals to the supervisor**::

    SIGHUP          graceful reload: a new worker per slot; once it says "ready"
                    (it is accepting), the old one gets SIGTERM and drains
    SIGTERM, SIGINT stop: every worker drains within its grace, then exit 0;
                    a worker still alive long after is killed (logged)
    SIGUSR1         ask each worker for its stats; log each and the sum
    SIGCHLD         reap; a worker that died is restarted (below)

A worker drains as ``Server.shutdown(grace)`` does. Workers ignore SIGINT
and SIGHUP: Ctrl-C in a terminal signals the whole process group, and the
supervisor alone decides what each worker is told.

**Restarts.** A worker that dies is restarted after 0.1 s, then, while it
keeps dying within ``STABLE_SECONDS`` of its start, after 0.2, 0.4, 0.8 ...
up to ``MAX_RESTART_DELAY_SECONDS``: a crash loop (a certificate that went
missing) costs the supervisor a fork now and then, not a core. Each exit is
logged with its status or signal.

**The link.** Each worker has a socketpair to the supervisor. Up it goes
``ready`` and stats; down it goes ``stats``. Only the supervisor holds its
ends (each new worker closes the copies it inherited), so when the
supervisor dies, however it dies, every worker reads EOF on its link at
once: *parent-death detection* with no polling and no Linux-only
``prctl``. The worker then drains and exits, leaving no orphans.

Discussion: fork, not spawn. A forked worker starts in a millisecond with
the supervisor's imports and parsed options, and inherits the listening
sockets without passing fds. The cost: the code a reload runs is the code
the supervisor started with; a reload re-reads the *files* the options
name (TLS certificate and key, token files), which is what a certificate
rotation needs. To upgrade the code itself, start a new supervisor beside
the old one (SO_REUSEPORT lets both bind), then stop the old one.
"""

import json
import logging
import os
import signal
import socket
from typing import Any, Callable, Dict, List, Optional, Sequence

from .errors import ReactorError
from .network import Reactor
from .server import CLOSE_LINGER_SECONDS, format_stats

logger = logging.getLogger("reactor")

#: The first restart of a dead worker waits this long; each quick death doubles it.
RESTART_DELAY_SECONDS = 0.1
MAX_RESTART_DELAY_SECONDS = 10.0
#: A worker that lived this long before dying resets its slot's back-off.
STABLE_SECONDS = 5.0
#: A reload's new worker that has not said "ready" by then is killed; the old one stays.
READY_TIMEOUT_SECONDS = 30.0
#: After a worker's grace (and linger), how long before the supervisor kills it.
KILL_MARGIN_SECONDS = 5.0
#: How long SIGUSR1 waits for the workers' stats.
STATS_TIMEOUT_SECONDS = 1.0
#: Cap on a link's unparsed input: a worker sends short lines.
MAX_LINK_BYTES = 1024 * 1024

WorkerMain = Callable[[Any, "WorkerLink"], int]


def supervise(worker_main: WorkerMain, listeners: Sequence[Any], grace_seconds: float) -> int:
    """Run a supervisor in this process until SIGTERM/SIGINT; return the exit status (0).

    ``listeners[i]`` is what worker slot ``i`` serves on: listening sockets
    in dicts and lists (the same object for every slot when they share
    them); ``worker_main(listeners[i], link)`` runs in each forked worker,
    makes its own loop, serves until SIGTERM or until
    ``link.attach(...)``'s supervisor-gone callback, drains, and returns an
    exit status. Call from the main thread (signals); the caller keeps the
    listening sockets and closes them when this returns.
    """
    loop = Reactor()
    supervisor = Supervisor(loop, worker_main, listeners, grace_seconds)
    try:
        loop.add_signal_handler(signal.SIGCHLD, supervisor.reap)    # before any fork
        loop.add_signal_handler(signal.SIGHUP, supervisor.reload)
        loop.add_signal_handler(signal.SIGUSR1, supervisor.log_stats)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, supervisor.stop, sig)
        supervisor.start()
        loop.run(stop_on_signals=False)
        logger.info("all workers have exited")
    finally:
        supervisor.close()
        loop.close()
    return 0


class Worker:
    """What the supervisor knows of one worker process."""

    __slots__ = ("slot", "generation", "pid", "link", "started", "ready", "retiring",
                 "inbox", "timer")

    def __init__(self, slot: int, generation: int, pid: int, link: socket.socket,
                 started: float) -> None:
        self.slot, self.generation, self.pid, self.link = slot, generation, pid, link
        self.started = started
        self.ready = self.retiring = False
        self.inbox = b""                 # link bytes not yet a whole line
        self.timer: Any = None           # ready timeout (a reload's worker) or kill timer

    def __repr__(self) -> str:
        return "worker %d (pid %d)" % (self.slot, self.pid)


class Supervisor:
    """The supervisor's state: each slot's worker, the restarts, a reload under way.

    Per slot: ``current`` accepts; ``incoming`` is a reload's new worker
    until it says ready; old workers retire (drain) on their own.
    """

    def __init__(self, loop: Any, worker_main: WorkerMain, listeners: Sequence[Any],
                 grace_seconds: float) -> None:
        self._loop = loop
        self._main = worker_main
        self._listeners = list(listeners)
        self._grace = grace_seconds
        slots = len(self._listeners)
        self.workers: Dict[int, Worker] = {}                     # pid -> every live worker
        self.current: List[Optional[Worker]] = [None] * slots
        self.incoming: List[Optional[Worker]] = [None] * slots
        self._quick_exits = [0] * slots
        self._restarts: Dict[int, Any] = {}                       # slot -> restart timer
        self._generation = 0
        self._stopping = False
        self._stop_timer: Any = None
        self._stats: Optional[Dict[int, Any]] = None             # pid -> reply, while asking
        self._stats_timer: Any = None

    def start(self) -> None:
        """Fork one worker per slot."""
        logger.info("starting %d workers", len(self._listeners))
        for slot in range(len(self._listeners)):
            self.current[slot] = self._spawn(slot)

    # -- signals ------------------------------------------------------------------

    def reload(self) -> None:
        """SIGHUP: start a new generation; each old worker retires when its successor is ready."""
        if self._stopping:
            return
        if any(self.incoming):
            logger.warning("SIGHUP: a reload is already under way; ignored")
            return
        self._generation += 1
        logger.info("SIGHUP: reloading, generation %d", self._generation)
        for slot, worker in enumerate(self.current):
            if worker is None:           # a restart is pending: it will be of the new generation
                continue
            new = self.incoming[slot] = self._spawn(slot)
            new.timer = self._loop.call_later(READY_TIMEOUT_SECONDS, self._give_up_on, new,
                                              "is not accepting %g s after its start"
                                              % READY_TIMEOUT_SECONDS)

    def stop(self, sig: int) -> None:
        """SIGTERM/SIGINT: drain every worker and exit; a second one ends the graces at once."""
        name = signal.Signals(sig).name
        if self._stopping:
            logger.info("%s again: the workers end their grace now", name)
            self._signal_all(signal.SIGTERM, retiring_too=True)
            return
        self._stopping = True
        logger.info("%s: stopping %d worker(s), %g s grace", name, len(self.workers), self._grace)
        for timer in self._restarts.values():
            timer.cancel()
        self._restarts.clear()
        self._signal_all(signal.SIGTERM, retiring_too=False)
        self._stop_timer = self._loop.call_later(
            self._grace + CLOSE_LINGER_SECONDS + KILL_MARGIN_SECONDS, self._kill_all)
        if not self.workers:
            self._loop.stop()

    def log_stats(self) -> None:
        """SIGUSR1: ask every ready worker for its counters; log them and the sum."""
        asked = [worker for worker in self.workers.values() if worker.ready]
        self._stats = {worker.pid: None for worker in asked}
        for worker in asked:
            _send(worker.link, b"stats\n")
        if self._stats_timer is not None:
            self._stats_timer.cancel()
        self._stats_timer = self._loop.call_later(STATS_TIMEOUT_SECONDS, self._log_collected)

    def reap(self) -> None:
        """SIGCHLD: collect every exited worker; restart it unless it was meant to go."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            worker = self.workers.pop(pid, None)
            if worker is not None:
                self._exited(worker, status)
        if self._stopping and not self.workers:
            self._loop.stop()

    def close(self) -> None:
        """Close the supervisor's ends of the links (the loop is closing)."""
        for worker in self.workers.values():
            worker.link.close()

    # -- workers coming and going -------------------------------------------------

    def _spawn(self, slot: int) -> Worker:
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:                                     # the worker; never returns
            status = 1
            try:
                ours.close()
                status = self._become_worker(slot, theirs)
            finally:                                 # logging flushed each line already
                os._exit(status)
        theirs.close()
        ours.setblocking(False)
        worker = Worker(slot, self._generation, pid, ours, self._loop.time())
        self.workers[pid] = worker
        self._loop.add_reader(ours, self._heard, worker)
        logger.info("worker %d started (pid %d, generation %d)", slot, pid, self._generation)
        return worker

    def _become_worker(self, slot: int, link: socket.socket) -> int:
        """In the forked child: let go of the supervisor's things, then run ``worker_main``."""
        try:
            for worker in self.workers.values():
                worker.link.close()          # only the supervisor may hold these (parent death)
            self._loop.close()               # inherited: disarmed at the fork (forks.py)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            own = {id(sock) for sock in sockets_in(self._listeners[slot])}
            for sock in sockets_in(self._listeners):
                if id(sock) not in own:
                    sock.close()             # another slot's socket
            return int(self._main(self._listeners[slot], WorkerLink(link, slot)) or 0)
        except SystemExit as exc:
            if isinstance(exc.code, str):
                logger.error("worker %d cannot start: %s", slot, exc.code)
                return 1
            return exc.code or 0
        except (OSError, ReactorError, ValueError) as exc:   # a file gone, a bad certificate
            logger.error("worker %d failed: %s", slot, exc)
            return 1
        except BaseException:
            logger.exception("worker %d failed", slot)
            return 1

    def _heard(self, worker: Worker) -> None:
        """A worker's link is readable: lines up, or EOF (the worker is exiting)."""
        try:
            data = worker.link.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data or len(worker.inbox) + len(data) > MAX_LINK_BYTES:
            self._loop.remove_reader(worker.link)        # SIGCHLD will tell us the rest
            return
        *lines, worker.inbox = (worker.inbox + data).split(b"\n")
        for line in lines:
            word, _, rest = line.partition(b" ")
            if word == b"ready":
                self._ready(worker)
            elif word == b"stats" and self._stats is not None and worker.pid in self._stats:
                self._stats[worker.pid] = json.loads(rest.decode())
                if all(reply is not None for reply in self._stats.values()):
                    self._log_collected()

    def _ready(self, worker: Worker) -> None:
        worker.ready = True
        slot = worker.slot
        logger.info("%r is accepting", worker)
        if worker is not self.incoming[slot]:
            return
        worker.timer.cancel()
        restart = self._restarts.pop(slot, None)     # the old one died meanwhile: no need
        if restart is not None:
            restart.cancel()
        old, self.current[slot], self.incoming[slot] = self.current[slot], worker, None
        if old is not None:
            self._retire(old)
        if not any(self.incoming):
            logger.info("reload done: generation %d serves", self._generation)

    def _retire(self, worker: Worker) -> None:
        """Tell an old worker to drain (it stops accepting first); kill it if it overstays."""
        worker.retiring = True
        _kill(worker.pid, signal.SIGTERM)
        worker.timer = self._loop.call_later(
            self._grace + CLOSE_LINGER_SECONDS + KILL_MARGIN_SECONDS, self._give_up_on, worker,
            "is still draining long after its %g s grace" % self._grace)

    def _exited(self, worker: Worker, status: int) -> None:
        self._loop.remove_reader(worker.link)
        worker.link.close()
        if worker.timer is not None:
            worker.timer.cancel()
        how = describe_exit(status)
        lived = self._loop.time() - worker.started
        slot = worker.slot
        if self._stopping or worker.retiring:
            log = logger.info if status == 0 else logger.warning
            log("%r %s after draining", worker, how)
            return
        if worker is self.incoming[slot]:
            self.incoming[slot] = None
            logger.error("reload: the new %r %s before it was ready; the old one keeps serving",
                         worker, how)
            return
        self.current[slot] = None
        quick = self._quick_exits[slot] = (self._quick_exits[slot] + 1
                                           if lived < STABLE_SECONDS else 1)
        delay = min(MAX_RESTART_DELAY_SECONDS, RESTART_DELAY_SECONDS * 2 ** (quick - 1))
        logger.warning("%r %s after %.1f s; restarting in %.1f s%s", worker, how, lived, delay,
                       " (%d quick exits in a row)" % quick if quick > 1 else "")
        self._restarts[slot] = self._loop.call_later(delay, self._restart, slot)

    def _restart(self, slot: int) -> None:
        del self._restarts[slot]
        if not self._stopping:
            self.current[slot] = self._spawn(slot)

    def _give_up_on(self, worker: Worker, why: str) -> None:
        """Kill a worker that overstayed: a reload's that never got ready, an old one draining."""
        worker.timer = None
        logger.warning("%r %s; killing it", worker, why)
        _kill(worker.pid, signal.SIGKILL)

    def _kill_all(self) -> None:
        for worker in list(self.workers.values()):
            self._give_up_on(worker, "is still running long after SIGTERM")

    def _signal_all(self, sig: int, retiring_too: bool) -> None:
        for worker in self.workers.values():
            if retiring_too or not worker.retiring:
                _kill(worker.pid, sig)

    def _log_collected(self) -> None:
        if self._stats_timer is not None:
            self._stats_timer.cancel()
            self._stats_timer = None
        replies, self._stats = self._stats or {}, None
        total: Dict[str, int] = {}
        for pid, stats in sorted(replies.items()):
            worker = self.workers.get(pid)
            name = repr(worker) if worker is not None else "worker (pid %d)" % pid
            if stats is None:
                logger.info("stats %s: no answer", name)
                continue
            logger.info("stats %s: %s", name, format_stats(stats))
            for key, value in stats.items():
                total[key] = total.get(key, 0) + value
        total["peak_connections"] = 0        # a sum of peaks is no peak; leave it out
        logger.info("stats all %d workers: %s", sum(1 for s in replies.values() if s),
                    format_stats(total))


class WorkerLink:
    """A worker's end of its socketpair with the supervisor (see the module docstring)."""

    def __init__(self, sock: socket.socket, slot: int) -> None:
        self.sock, self.slot = sock, slot
        sock.setblocking(False)
        self._stats: Callable[[], Dict[str, int]] = dict
        self._gone: Callable[[], None] = lambda: None
        self._loop: Any = None

    def attach(self, loop: Any, stats: Callable[[], Dict[str, int]],
               supervisor_gone: Callable[[], None]) -> None:
        """Answer the supervisor's stats requests with ``stats()`` and call
        ``supervisor_gone()`` if the supervisor dies (EOF on the link)."""
        self._loop, self._stats, self._gone = loop, stats, supervisor_gone
        loop.add_reader(self.sock, self._readable)

    def ready(self) -> None:
        """Tell the supervisor that this worker accepts: a reload may now retire its predecessor."""
        _send(self.sock, b"ready\n")

    def _readable(self) -> None:
        try:
            data = self.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._loop.remove_reader(self.sock)
            logger.warning("worker %d: the supervisor is gone; draining and exiting", self.slot)
            self._gone()
            return
        for _ in range(data.count(b"stats\n")):
            _send(self.sock, b"stats %s\n" % json.dumps(self._stats()).encode())


def sockets_in(listeners: Any) -> List[socket.socket]:
    """Return every socket in ``listeners``: a socket, or dicts and lists of them, nested."""
    if isinstance(listeners, socket.socket):
        return [listeners]
    items = listeners.values() if isinstance(listeners, dict) else listeners
    return [sock for item in items for sock in sockets_in(item)]


def describe_exit(status: int) -> str:
    """Say how a process ended, from its ``waitpid`` status: 'exited with status 3', 'was killed by SIGKILL'."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = "signal %d" % sig
        return "was killed by %s" % name
    return "exited with status %d" % os.WEXITSTATUS(status)


def _send(sock: socket.socket, data: bytes) -> None:
    try:
        sock.send(data)
    except OSError:          # the other side is gone; SIGCHLD or EOF says so
        pass


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
