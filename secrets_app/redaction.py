"""Redaction: the forms in which a secret value may show up in a log, and masking them in text and
in log records.

Standard library only, no Django: the console computes the forms it sends with each value (the
runner read's `redact`), and the runner client computes the same forms for values it finds in its
local context and masks them in its logs, with this one module.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import shlex
import threading
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from typing import Any


def json_strings(document: Any) -> list[str]:
    """Every string value in a JSON document, nested ones too (not dictionary keys)."""
    found, pending = [], [document]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, Mapping):
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
    return found


MASK = "***"
# A form derived from a value (a line, a JSON leaf, an encoding) is masked only if it holds at
# least this many characters besides surrounding whitespace: fragments such as "}", "],", "en"
# occur all over any log and give away next to nothing. The value itself is masked whatever its
# length (unless it is only whitespace): someone declared it secret, and a log spoiled by a
# too-short secret is a visible nuisance where a leaked one is not.
MIN_MASKED_FORM_LENGTH = 4
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


# The forms of one answer take at most this many characters as JSON (the values themselves always
# come first and are never left out). A 64 KiB JSON secret of thousands of short leaves has more
# forms than that: its own forms come first, then its leaves', until the budget is spent.
REDACT_MAX_CHARS = 512 * 1024
# Less than this left of the budget is a full budget: nothing more is computed.
_FULL = 64


def redaction_forms(*values: str, max_chars: int = REDACT_MAX_CHARS) -> list[str]:
    """The forms in which any of `values` may appear in a log, de-duplicated, longest first.

    Each value itself is always a form. Then, while the forms take fewer than `max_chars`
    characters as JSON strings: each value's own forms (lines, encodings, escapes), then the forms
    of its JSON leaves, nested leaves last; a form too big for what is left is passed over. So the
    list, and the work to build it, is bounded whatever the values hold; what does not fit is not
    masked.
    """
    forms: list[str] = []
    seen: set[str] = set()
    spent = 0
    for form in _forms_by_priority([value for value in values if value.strip()]):
        if form in seen or (form not in values and len(form.strip()) < MIN_MASKED_FORM_LENGTH):
            continue
        cost = len(json.dumps(form))
        if spent + cost > max_chars and form not in values:
            if max_chars - spent < _FULL:
                break
            continue  # too big for what is left; a smaller form may still fit
        seen.add(form)
        forms.append(form)
        spent += cost
    return sorted(forms, key=_longest_first)


def _forms_by_priority(values: list[str]) -> Iterator[str]:
    """The values, then each one's own forms, then, level by level, the forms of their JSON leaves."""
    yield from values
    level = values
    while level:
        for value in level:
            yield from _own_forms(value)
        level = [leaf for value in level for leaf in _json_leaves(value)]


def _longest_first(form: str) -> tuple[int, str]:
    return -len(form), form


def _own_forms(value: str) -> list[str]:
    """Every form of one value but its JSON leaves', however short: as is, line by line, encoded, escaped."""
    forms = [value]
    for line in _LINE_BREAK.split(value):
        forms += [line, line.strip()]
    # surrogatepass: an environment variable may hold any code point, and this must never raise.
    encoded = value.encode("utf-8", "surrogatepass")
    for base64_text in (base64.b64encode(encoded), base64.urlsafe_b64encode(encoded)):
        forms += [base64_text.decode("ascii"), base64_text.decode("ascii").rstrip("=")]
    forms.append(urllib.parse.quote(value, safe="", errors="surrogatepass"))
    forms.append(urllib.parse.quote_plus(value, safe="", errors="surrogatepass"))
    forms += sorted(_escaped_forms(value, encoded))
    return forms


def _escaped_forms(value: str, encoded: bytes) -> set[str]:
    """The value as Python, JSON and shell logs escape it, so that `%r`, a dict or an exception
    message, a JSON document or a shell trace shows a form that is masked too."""
    as_json = json.dumps(value)[1:-1]
    shell = shlex.quote(value)
    return {
        # Python: repr() (%r, containers, most exception messages) escapes the quote it encloses the
        # text in, and control characters; ascii() (%a) escapes non-ASCII too; bytes show \xNN.
        repr(value)[1:-1],
        ascii(value)[1:-1],
        repr(encoded)[2:-1],
        # JSON, with and without \uXXXX escapes, and with "/" escaped as some encoders write it.
        as_json,
        json.dumps(value, ensure_ascii=False)[1:-1],
        as_json.replace("/", "\\/"),
        # Shell, where a value needs quoting: shlex.quote() (what Python writes into a command line)
        # and bash's `set -x` trace, which close, escape and reopen the quote around a quote.
        shell,
        "'" + value.replace("'", "'\\''") + "'" if shell != value else value,
    }


def _json_leaves(value: str) -> list[str]:
    """Each string leaf of `value` if it is a JSON object or array, else none."""
    if not value.lstrip().startswith(("{", "[")):
        return []
    try:
        document = json.loads(value)
    except (ValueError, RecursionError):
        return []
    # In document order, so that what a budget leaves out is the end of a long document.
    return json_strings(document)[::-1] if isinstance(document, (dict, list)) else []


class MaskedForms:
    """A set of forms to mask in text: they only accumulate, and may be added from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._forms: set[str] = set()
        # (any form, every form at each position): replaced as one pair, read without the lock.
        self._patterns: tuple[re.Pattern[str], re.Pattern[str]] | None = None

    def add(self, forms: Iterable[str]) -> None:
        with self._lock:
            new = {form for form in forms if isinstance(form, str) and form} - self._forms
            if not new:
                return
            self._forms |= new
            # Longest first: where two forms start at the same place, the longer one is masked.
            alternation = "|".join(re.escape(form) for form in sorted(self._forms, key=_longest_first))
            self._patterns = (re.compile(alternation), re.compile(f"(?=({alternation}))"))

    def mask(self, text: str) -> str:
        """`text` with every form replaced by `***`; overlapping forms are masked as one span."""
        patterns = self._patterns
        first = patterns[0].search(text) if patterns else None
        if first is None:
            return text
        # Overlapping forms are masked as one span, so no tail of either is left showing.
        spans: list[list[int]] = []
        for match in patterns[1].finditer(text, first.start()):
            start, end = match.span(1)
            if spans and start <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], end)
            else:
                spans.append([start, end])
        pieces, shown_from = [], 0
        for start, end in spans:
            pieces += [text[shown_from:start], MASK]
            shown_from = end
        pieces.append(text[shown_from:])
        return "".join(pieces)


# Every form of every value this process has been given to mask (the runner client adds the forms
# of each value it obtains; the console itself never logs a value and adds none).
_masked_forms = MaskedForms()


def remember(forms: Iterable[str]) -> None:
    """Mask these forms in everything this process masks from now on."""
    _masked_forms.add(forms)


def mask(text: str) -> str:
    """`text` with every form of every value this process has obtained replaced by `***`."""
    return _masked_forms.mask(text)


class SecretMaskingFilter(logging.Filter):
    """Masks values in a record's message (its arguments applied), exception text and stack.

    Install it on handlers (`handler.addFilter(SecretMaskingFilter())`, or `install_log_masking()`):
    a filter on a logger does not see the records of its child loggers, a handler's does.
    """

    # Tracebacks are rendered here, masked, and kept as the record's exc_text, which formatters
    # print instead of rendering the exception again.
    _traceback_formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            # Arguments that do not fit the format: keep them, masked, rather than let logging
            # report the failure by printing them unmasked to stderr.
            arguments = record.args.values() if isinstance(record.args, Mapping) else record.args or ()
            message = " ".join(str(part) for part in (record.msg, *arguments))
        record.msg, record.args = mask(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._traceback_formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        return True


def install_log_masking(logger: logging.Logger | None = None) -> SecretMaskingFilter:
    """Add a SecretMaskingFilter to every handler of `logger` (the root logger by default)."""
    target = logger or logging.getLogger()
    if not target.handlers:
        # Records would reach logging's last-resort handler, which no filter can be added to.
        raise ValueError(f"Logger {target.name!r} has no handlers: configure logging first, then install masking.")
    masking = SecretMaskingFilter()
    for handler in target.handlers:
        if not any(isinstance(existing, SecretMaskingFilter) for existing in handler.filters):
            handler.addFilter(masking)
    return masking
