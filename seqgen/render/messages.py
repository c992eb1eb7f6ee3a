"""A generated ValueError's message as Python source: the rule in words, then the values it got,
as one string or several that black keeps within 88 columns."""

from __future__ import annotations

# a message longer than this is written as several strings, each at most MESSAGE_PIECE long, so
# black can keep `raise ValueError(...)` within 88 columns (the strings sit 16 columns in)
MESSAGE_LINE = 88 - 16 - 3
MESSAGE_PIECE = MESSAGE_LINE - 2


def message_source(message: str, fields: list[str]) -> str:
    """`message, got k={k}, h={h}` as Python source: one string, or several (the values in an
    f-string, never split) when it would not fit on one line. Each field is f-string source
    (`k={k}`, `{x.shape[2]}`), placed as it is; the message's own braces are escaped."""
    words = message.split(" ")
    if fields:
        words = [*words[:-1], words[-1] + ",", "got", *(f + "," for f in fields[:-1]), fields[-1]]
    first_field = len(words) - len(fields)
    width = MESSAGE_LINE if len(" ".join(words)) <= MESSAGE_LINE else MESSAGE_PIECE
    pieces: list[list[int]] = [[]]  # word indices
    got = len(words) - len(fields) - 1  # "got ...": its own piece when the two halves fit
    if (
        fields
        and width == MESSAGE_PIECE
        and max(len(" ".join(p)) for p in (words[:got], words[got:])) <= width
    ):
        pieces = [list(range(got)), list(range(got, len(words)))]
    else:
        for i, word in enumerate(words):
            if pieces[-1] and len(" ".join([*(words[j] for j in pieces[-1]), word])) > width:
                pieces.append([])
            pieces[-1].append(i)
    sources = []
    for piece in pieces:
        end = "" if piece is pieces[-1] else " "
        if piece[-1] < first_field:
            sources.append(repr(" ".join(words[i] for i in piece) + end))
        else:  # it holds a field: an f-string, with the braces of the text around doubled
            escaped = (words[i] if i >= first_field else _brace_escaped(words[i]) for i in piece)
            sources.append("f" + repr(" ".join(escaped) + end))
    return " ".join(sources)


def _brace_escaped(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")
