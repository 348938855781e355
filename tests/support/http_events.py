"""HTTP parser events as comparable tuples, for the request and response parser tests."""

from reactor.http.parser import Data, EndOfMessage


def event_tuples(events, head_class, label):
    """Return events as tuples, adjacent Data pieces joined (chunking must not matter).

    A head becomes ``(label, *its slots)``; Data ``("data", bytes)``; the end ``("end",)``.
    """
    out = []
    for event in events:
        if isinstance(event, Data):
            if out and out[-1][0] == "data":
                out[-1] = ("data", out[-1][1] + event.data)
            elif event.data:
                out.append(("data", event.data))
        elif isinstance(event, EndOfMessage):
            out.append(("end",))
        else:
            out.append((label,) + tuple(getattr(event, name) for name in head_class.__slots__))
    return out
