"""What of a chat message can be spoken: the documented rules that turn markdown and other
non-speech content into plain sentences (pure functions). Applied to chat-format sources before
the usual cleanup (synth.dialogs.text.clean_text):

1. fenced code blocks (``` or ~~~) are dropped, and so are indented code blocks;
2. tables (lines that start and end with `|`, and their `|---|` rules) are dropped;
3. images `![alt](url)` keep their alt text, links `[text](url)` their text;
4. bare URLs (http://, https://, www.) are dropped, and so are HTML tags;
5. inline code loses its backticks; emphasis and strikethrough markers (** __ * _ ~~) go;
6. headings, block quotes and list bullets lose their markers, and a heading or list item that
   does not end in punctuation gets a full stop, so that it is read as a sentence;
7. what is left is joined into one line.
A message with nothing speakable left is reported by the source, naming the message."""

from __future__ import annotations

import re

_FENCE = re.compile(r"^\s*(```|~~~)")
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_HTML = re.compile(r"</?[A-Za-z][^>]*>")
_INLINE_CODE = re.compile(r"`([^`]*)`")
_EMPHASIS = re.compile(
    r"(\*\*|__|~~)(.+?)\1|(?<![\w*])\*(?!\s)([^*]+?)\*(?!\w)|(?<![\w_])_(?!\s)([^_]+?)_(?!\w)"
)
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+")
_QUOTE = re.compile(r"^\s*>+\s?")
_BULLET = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+")
_SPACES = re.compile(r"\s+")


def speakable(text: str) -> str:
    """The speakable sentences of a markdown message (see the module's rules)."""
    out: list[str] = []
    in_fence = False
    for line in text.replace("\r\n", "\n").split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence or _TABLE_ROW.match(line) or line.startswith(("    ", "\t")) and line.strip():
            continue
        marker = bool(_HEADING.match(line) or _BULLET.match(line))
        line = _QUOTE.sub("", _BULLET.sub("", _HEADING.sub("", line)))
        line = _IMAGE.sub(r"\1", line)
        line = _LINK.sub(r"\1", line)
        line = _URL.sub("", line)
        line = _HTML.sub("", line)
        line = _INLINE_CODE.sub(r"\1", line)
        line = _EMPHASIS.sub(lambda m: m.group(2) or m.group(3) or m.group(4) or "", line)
        line = _SPACES.sub(" ", line).strip()
        if not line:
            continue
        if marker and line[-1] not in ".!?:;,":
            line += "."
        out.append(line)
    return " ".join(out)
