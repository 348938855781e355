"""``redis://`` and ``rediss://`` URLs: where a Redis is and how to log in, checked in one place.

The form is redis-py's and most Redis clients', without its query options::

    redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]      port 6379 and database 0 unless given
    rediss://...                                    the same over TLS

    redis://10.0.0.5                 no AUTH
    redis://:s3cret@10.0.0.5:6380/2  AUTH s3cret (requirepass), then SELECT 2
    redis://chat:s3cret@10.0.0.5     AUTH chat s3cret (an ACL user)

``parse_redis_url`` refuses anything else with a ``ValueError`` of one line
that names the mistake and shows the form, so a command line can print it
as it is (``chat --redis``). A password never reaches a log: ``str()`` of a
:class:`RedisAddress` leaves it out, and an error shows it as ``***``.
Discussion: a user without a password (``redis://chat@host``) is refused
rather than guessed at; redis-py reads it as a user, some clients as a
password.
"""

import re
from typing import NamedTuple, Optional
from urllib.parse import unquote, urlsplit

URL_FORM = "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], or rediss://... for TLS"


class RedisAddress(NamedTuple):
    """Where a Redis is and how to log in: what a URL says (see :func:`parse_redis_url`)."""

    tls: bool
    host: str
    port: int
    username: Optional[str]
    password: Optional[str]
    db: int

    def __str__(self) -> str:
        """Return the URL without its user and password: for log lines."""
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "%s://%s:%d/%d" % ("rediss" if self.tls else "redis", host, self.port, self.db)


def parse_redis_url(url: str) -> RedisAddress:
    """Return what ``url`` names; ValueError, in one line saying what to fix, if it is bad.

    The port defaults to 6379 and the database to 0. The user and password
    may be percent-encoded (``%40`` for ``@``); a user needs a password.
    """
    def bad(why: str) -> ValueError:                 # shows the URL, but not its password
        shown = re.sub(r"^([^/]*//[^/@]*?:)[^/]*@", r"\1***@", url)
        return ValueError("%r: %s; expected %s" % (shown, why, URL_FORM))
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:                   # a port that is not a number, a bad [IPv6]
        raise bad(str(exc).lower()) from None
    if parts.scheme not in ("redis", "rediss"):
        raise bad("the scheme must be redis or rediss")
    if not parts.hostname:
        raise bad("no host")
    if port == 0:
        raise bad("port 0 is no server's port")
    if parts.query or parts.fragment:
        raise bad("no ?query or #fragment is understood")
    db = parts.path[1:]
    if db and not (db.isdigit() and db.isascii()):
        raise bad("the database after / must be a number")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if username is not None and password is None:
        raise bad("a user needs a password (write :PASSWORD@ alone for no user)")
    return RedisAddress(parts.scheme == "rediss", parts.hostname, port or 6379, username,
                        password, int(db or 0))
