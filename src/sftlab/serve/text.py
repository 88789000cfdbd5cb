"""Stop strings: cut a finished text, and hold back a streamed tail that may still become a stop.

>>> cut_at_stop("Hello.\\nUser: hi", ["\\nUser:"])
('Hello.', True)
>>> cut_at_stop("Hello", ["###"])
('Hello', False)
"""

from __future__ import annotations


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """``text`` up to the earliest stop string (excluded), and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class StopScanner:
    """Feed growing text; get back only what is safe to send, so a stop string is never half-sent.

    >>> scan = StopScanner(["END"])
    >>> scan.feed("abc E"), scan.feed("N"), scan.feed("D tail"), scan.stopped
    ('abc ', '', '', True)
    """

    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.text = ""
        self.sent = 0
        self.stopped = False

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        self.text += piece
        text, self.stopped = cut_at_stop(self.text, self.stops)
        # Without a stop yet, hold back only a tail that could be the start of one.
        safe = len(text) if self.stopped else max(self.sent, len(text) - self._partial(text))
        out = text[self.sent : safe]
        self.sent = safe
        return out

    def _partial(self, text: str) -> int:
        """Length of the longest tail of ``text`` that begins some stop string."""
        for n in range(min(self.hold, len(text)), 0, -1):
            tail = text[-n:]
            if any(stop.startswith(tail) for stop in self.stops):
                return n
        return 0

    def flush(self) -> str:
        """The held-back tail once generation has ended without a stop."""
        if self.stopped:
            return ""
        out = self.text[self.sent :]
        self.sent = len(self.text)
        return out
