"""The keyspace of ``python -m reactor kv``: keys, values, deadlines and memory.

Values are byte strings (the commands kv has are Redis's string commands).
A key with a time to live has one timer on the loop's wheel, so expiry
costs nothing per pass however many keys have deadlines, and there is no
scan over all keys, ever::

    SET k v PX 100  ->  data[k] = v;  expires[k] = loop.call_at(now + 0.1, expire, k)
    GET k           ->  lazy check: past its deadline? delete, answer nil
    deadline passes ->  the wheel fires expire(k): delete (a reset or PERSIST
                        moved or cancelled the timer before, so it fires once)

Both halves are needed: the wheel deletes keys nobody reads (memory comes
back), the lazy check makes a read exact to the clock rather than to the
wheel's tick, as Redis's own lazy-plus-active expiry does.

Deadlines are in loop time (``loop.time()``, monotonic). Redis's absolute
forms (``EXAT``/``PXAT``, ``EXPIREAT``, and what the append-only file holds)
are Unix times; ``unix_ms`` and ``deadline_from_unix_ms`` convert through the
wall clock, which is injectable so tests never sleep.

Memory is counted approximately, as the bytes of keys and values plus a
fixed overhead per key and per deadline (CPython's objects, the dict slot,
the timer). That is what ``--maxmemory`` compares against: an estimate of
the same order as the process's real growth, cheap to keep exact.
"""

import re
import time
from typing import Any, Callable, Dict, List, Optional

#: Estimated bytes per key beyond its key and value: two bytes objects'
#: headers (33 each) and a dict slot.
KEY_OVERHEAD_BYTES = 100
#: Estimated bytes per deadline: the timer object and the expires dict slot.
DEADLINE_OVERHEAD_BYTES = 150
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_INTEGER = re.compile(rb"(?:0|-?[1-9][0-9]*)\Z")           # no "-0", as string2ll


class Keyspace:
    """Keys to byte values, with deadlines on the loop's timer wheel; see the module docstring."""

    __slots__ = ("_loop", "_wall_clock", "data", "expires", "used_memory", "expired_keys")

    def __init__(self, loop: Any, wall_clock: Callable[[], float] = time.time) -> None:
        self._loop = loop
        self._wall_clock = wall_clock
        self.data: Dict[bytes, bytes] = {}
        self.expires: Dict[bytes, Any] = {}      # key -> its timer on the loop
        self.used_memory = 0
        self.expired_keys = 0

    def __len__(self) -> int:
        return len(self.data)

    def get(self, key: bytes) -> Optional[bytes]:
        """Return the value of ``key`` (None if missing or past its deadline)."""
        # Hot path: every GET. Keys without deadlines cost one dict lookup.
        value = self.data.get(key)
        if value is not None and key in self.expires and self._is_past(key):
            self._expire(key)
            return None
        return value

    def exists(self, key: bytes) -> bool:
        """Tell whether ``key`` exists (a lazy expiry check included)."""
        return self.get(key) is not None

    def set(self, key: bytes, value: bytes, deadline: Optional[float] = None,
            keep_deadline: bool = False) -> None:
        """Store ``value``; ``deadline`` (loop time) or none, unless ``keep_deadline``."""
        if key in self.expires and self._is_past(key):
            self._expire(key)                   # KEEPTTL must not keep a deadline gone by
        old = self.data.get(key)
        if old is None:
            self.used_memory += len(key) + len(value) + KEY_OVERHEAD_BYTES
        else:
            self.used_memory += len(value) - len(old)
        self.data[key] = value
        if deadline is not None:
            self.set_deadline(key, deadline)
        elif not keep_deadline and key in self.expires:
            self.persist(key)

    def delete(self, key: bytes) -> bool:
        """Remove ``key``; tell whether it existed (and had not expired)."""
        if self.get(key) is None:
            return False
        self._remove(key)
        return True

    def deadline(self, key: bytes) -> Optional[float]:
        """Return the loop time at which ``key`` expires (None: no deadline or no key)."""
        timer = self.expires.get(key)
        return None if timer is None else timer.when()

    def set_deadline(self, key: bytes, deadline: float) -> None:
        """Give the existing ``key`` a deadline in loop time; one already past deletes it."""
        if deadline <= self._loop.time():
            self._remove(key)
            return
        timer = self.expires.get(key)
        if timer is None:
            self.expires[key] = self._loop.call_at(deadline, self._expire_timer, key)
            self.used_memory += DEADLINE_OVERHEAD_BYTES
        else:
            timer.reset(deadline - self._loop.time())

    def persist(self, key: bytes) -> bool:
        """Drop the deadline of ``key``; tell whether it had one."""
        timer = self.expires.pop(key, None)
        if timer is None:
            return False
        timer.cancel()
        self.used_memory -= DEADLINE_OVERHEAD_BYTES
        return True

    def keys(self, pattern: bytes) -> List[bytes]:
        """Return the live keys matching the Redis glob ``pattern`` (O(n): KEYS is for debugging)."""
        if pattern == b"*":
            return [key for key in list(self.data) if self.get(key) is not None]
        match = glob_to_regex(pattern).match
        return [key for key in list(self.data) if match(key) and self.get(key) is not None]

    def flush(self) -> None:
        """Remove every key and cancel every deadline."""
        for timer in self.expires.values():
            timer.cancel()
        self.data.clear()
        self.expires.clear()
        self.used_memory = 0

    def unix_ms(self, deadline: float) -> int:
        """Return the Unix time in ms of the loop-time ``deadline`` (for the append-only file)."""
        return int(round((self._wall_clock() + deadline - self._loop.time()) * 1000))

    def deadline_from_unix_ms(self, unix_ms: int) -> float:
        """Return the loop time of a Unix time in ms (EXAT, PXAT, EXPIREAT, the append-only file)."""
        return self._loop.time() + unix_ms / 1000.0 - self._wall_clock()

    # -- internals -------------------------------------------------------------

    def _is_past(self, key: bytes) -> bool:
        return self.expires[key].when() <= self._loop.time()

    def _expire(self, key: bytes) -> None:
        self._remove(key)
        self.expired_keys += 1

    def _expire_timer(self, key: bytes) -> None:
        """The wheel's half of expiry: the key's timer fired (it moves on every new deadline)."""
        if key in self.expires:
            self._expire(key)

    def _remove(self, key: bytes) -> None:
        value = self.data.pop(key, None)
        if value is not None:
            self.used_memory -= len(key) + len(value) + KEY_OVERHEAD_BYTES
        self.persist(key)


def parse_int(value: bytes) -> Optional[int]:
    """Return ``value`` as a signed 64-bit integer, or None (Redis's ``string2ll`` rules).

    No sign but '-', no spaces, no leading zeros: ``b"007"`` and ``b"+1"`` are
    not integers to Redis, so INCR on them fails there and here alike.
    """
    if len(value) > 20 or not _INTEGER.match(value):
        return None
    number = int(value)
    return number if _INT64_MIN <= number <= _INT64_MAX else None


def glob_to_regex(pattern: bytes) -> Any:
    """Compile a Redis glob (``*``, ``?``, ``[a-z]``, ``[^x]``, ``\\`` escapes) to a regex."""
    out, index, size = [], 0, len(pattern)
    while index < size:
        char = pattern[index:index + 1]
        index += 1
        if char == b"*":
            out.append(b".*")
        elif char == b"?":
            out.append(b".")
        elif char == b"\\" and index < size:
            out.append(re.escape(pattern[index:index + 1]))
            index += 1
        elif char == b"[":
            end = index
            negate = pattern[end:end + 1] == b"^"
            if negate:
                end += 1
            members = []
            while end < size and pattern[end:end + 1] != b"]":
                if pattern[end:end + 1] == b"\\" and end + 1 < size:
                    end += 1
                    members.append(re.escape(pattern[end:end + 1]))
                elif pattern[end + 1:end + 2] == b"-" and end + 2 < size \
                        and pattern[end + 2:end + 3] != b"]":
                    low, high = sorted((pattern[end:end + 1], pattern[end + 2:end + 3]))
                    members.append(re.escape(low) + b"-" + re.escape(high))
                    end += 2
                else:
                    members.append(re.escape(pattern[end:end + 1]))
                end += 1
            index = end + 1
            out.append(b"[" + (b"^" if negate else b"") + b"".join(members) + b"]"
                       if members else (b"." if negate else b"(?!)"))
        else:
            out.append(re.escape(char))
    return re.compile(b"".join(out) + b"\\Z", re.DOTALL)
