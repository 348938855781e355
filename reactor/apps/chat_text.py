"""What chat lets through: the nick and room rules, and text made safe to show.

A chat line goes to people's terminals (``nc``, telnet), where an ESC
sequence moves the cursor and a CR returns to the start of the line: a
member who could send those could erase its own ``mallory: `` prefix and
print a line that looks like the server's. So every received line is
passed through ``printable`` once, on arrival, and a nick is a plain ASCII
word; docs/CHAT.md (*Telling server lines apart*) gives the rule a reader
or a bot relies on.
"""

import re
from typing import Any

#: A nick: ASCII, starts with a letter, ends with a letter or digit (no
#: look-alike "victim." beside "victim"). Unique ignoring case.
NICK = re.compile(r"[A-Za-z](?:[A-Za-z0-9_.-]{0,30}[A-Za-z0-9])?")
NICK_RULE = ("1-32 letters, digits, '_', '-' or '.', starting with a letter "
             "and ending with a letter or digit")
#: A room name (written without its '#').
ROOM = re.compile(r"[A-Za-z0-9_.-]{1,32}")
ROOM_RULE = "1-32 letters, digits, '_', '-' or '.'"
#: Nicks nobody gets: "error: hi" from a member named error would pass for
#: the server's own error line (and "commands: ..." for the /help reply).
RESERVED_NICKS = frozenset({"error", "commands"})
#: What ``printable`` escapes: the Unicode categories Cc, Cf, Zl and Zp (as
#: of Unicode 15; a test checks this class against ``unicodedata``), except
#: TAB and the joiners U+200C/U+200D, which emoji and some scripts need and
#: which move no text.
UNSAFE = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2"
    "\u180e\u200b\u200e\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f]")


def printable(text: str) -> str:
    """Return ``text`` with each ``UNSAFE`` character as a Python escape (``\\x1b``, ``\\u202e``).

    Escaped rather than dropped, so a reader sees that something was there.
    A backslash the member typed stays as it is: ``\\x1b`` typed by hand
    looks the same, harmlessly, since either way it is text after ``NICK: ``.
    """
    return UNSAFE.sub(_escape, text)


def _escape(match: Any) -> str:
    return ascii(match.group())[1:-1]
