"""The `.env` file format, as the import reads it. Pure Python: no Django, no I/O.

    # a comment
    export API_KEY=abc123          # `export ` is allowed; so is this comment
    DB_URL = postgres://db/app     # whitespace around `=` is allowed
    LITERAL='no $escapes \\n here' # single quotes: taken as written
    PEM="-----BEGIN KEY-----
    MIIB...
    -----END KEY-----"             # double quotes: may span lines; \\n \\r \\t \\" \\\\ are escapes

- One `KEY=value` per line; blank lines and lines starting with `#` are skipped.
- Unquoted values end at a ` #` (a `#` after whitespace starts a comment; `a#b` is a value) and
  are stripped of surrounding whitespace. Nothing is interpolated: `$HOME` stays `$HOME`.
- Quoted values are kept exactly; after the closing quote only whitespace or a comment may follow.
  In double quotes an unknown escape such as `\\d` is kept as written.
- Every line-end convention ends a line: LF, CRLF and a lone CR (old Mac files) are all read as LF,
  also inside multi-line values; a leading UTF-8 BOM is ignored.
- A quote that is never closed takes the rest of the file into its value: it is reported on its
  line, and no line after it is read, so that no piece of that value is ever shown as a key.

Problems are reported by line number, never with any part of the line: a line that cannot be
read may be part of a value. Whether a key or a value is acceptable to the console is not decided
here (see `services.imports.plan_dotenv_import`); this module reads the syntax and refuses a key set twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# 256 KiB: even sent as a form (every byte %-encoded, three times its size) or in a JSON string, a
# file this size stays under the request body limit (DATA_UPLOAD_MAX_MEMORY_SIZE, 1 MiB).
MAX_BYTES = 256 * 1024
MAX_LINES = 2000

BOM = "\ufeff"
ASSIGNMENT = re.compile(r"[ \t]*(?:export[ \t]+)?(?P<key>[^\s=]+)[ \t]*=(?P<rest>.*)")
INLINE_COMMENT = re.compile(r"\s#")
DOUBLE_QUOTE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


@dataclass(frozen=True)
class Assignment:
    """One `KEY=value` of the file; `line` is where it starts."""

    line: int
    key: str
    value: str = field(repr=False)


@dataclass(frozen=True)
class Problem:
    """A line that cannot be imported. `key` is the key as written, if the line had one."""

    line: int
    code: str
    message: str
    key: str = ""


@dataclass(frozen=True)
class ParsedDotenv:
    assignments: list[Assignment]
    problems: list[Problem]


class DotenvRefused(ValueError):
    """The file as a whole cannot be read: too large, too many lines, or nothing in it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class _Unterminated(Exception):
    pass


def parse(text: str) -> ParsedDotenv:
    """Read a `.env` file: its assignments in order, and a problem for each line that has one."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise DotenvRefused("dotenv_too_large", f"The file is {size} bytes; the limit is {MAX_BYTES} bytes (256 KiB).")
    lines = text.removeprefix(BOM).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[-1] == "":
        lines.pop()  # the line end of the last line
    if len(lines) > MAX_LINES:
        raise DotenvRefused("dotenv_too_many_lines", f"The file has {len(lines)} lines; the limit is {MAX_LINES}.")

    assignments: list[Assignment] = []
    problems: list[Problem] = []
    first_line_of: dict[str, int] = {}
    index = 0
    while index < len(lines):
        number, line = index + 1, lines[index]
        index += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = ASSIGNMENT.fullmatch(line)
        if match is None:
            problems.append(Problem(number, "malformed_line", "This line is not KEY=value (nor a comment)."))
            continue
        key, rest = match["key"], match["rest"]
        try:
            value, index, problem = _value(rest, lines, index, number)
        except _Unterminated:
            quote = "double" if rest.lstrip()[0] == '"' else "single"
            message = (
                f"The {quote} quote opened on this line is never closed, so the rest of the file would be its "
                "value: nothing after this line was read."
            )
            problems.append(Problem(number, "unterminated_quote", message, key))
            break  # every later line is inside the quote: reading it as keys could show a piece of a value
        if problem:
            problems.append(Problem(number, "malformed_line", problem, key))
        elif key in first_line_of:
            problems.append(
                Problem(
                    number,
                    "duplicate_key",
                    f"This key is already set on line {first_line_of[key]}; a key may appear once.",
                    key,
                )
            )
        else:
            first_line_of[key] = number
            assignments.append(Assignment(number, key, value))
    if not assignments and not problems:
        raise DotenvRefused("dotenv_empty", "The file holds no KEY=value line.")
    return ParsedDotenv(assignments, problems)


def _value(rest: str, lines: list[str], index: int, number: int) -> tuple[str, int, str]:
    """The value that starts with `rest` (the text after `=` on line `number`): the value, the
    index of the next line to read, and a problem (empty if none)."""
    stripped = rest.lstrip()
    if not stripped or stripped[0] not in "\"'":
        comment = INLINE_COMMENT.search(rest)
        return (rest[: comment.start()] if comment else rest).strip(), index, ""
    quote, text, position = stripped[0], stripped, 1
    chunks: list[str] = []
    while True:
        closing = _closing_quote(text, position, quote)
        if closing is not None:
            chunks.append(_unescape(text[position:closing], quote))
            break
        # Not closed on this line: the value goes on, line end included, on the next one.
        chunks.append(_unescape(text[position:], quote) + "\n")
        if index >= len(lines):
            raise _Unterminated()
        text, position, index = lines[index], 0, index + 1
    after = text[closing + 1 :].strip()
    if after and not after.startswith("#"):
        closes = f" (the value opened on line {number} closes on line {index})" if index > number else ""
        return "", index, f"Unexpected text after the closing quote{closes}."
    return "".join(chunks), index, ""


def _closing_quote(text: str, start: int, quote: str) -> int | None:
    """Where the quote closes in `text` from `start`, skipping escaped characters in double quotes."""
    position = start
    while position < len(text):
        character = text[position]
        if character == "\\" and quote == '"':
            position += 2
            continue
        if character == quote:
            return position
        position += 1
    return None


def _unescape(text: str, quote: str) -> str:
    if quote == "'":
        return text
    return re.sub(r"\\(.)", lambda m: DOUBLE_QUOTE_ESCAPES.get(m[1], m[0]), text)
