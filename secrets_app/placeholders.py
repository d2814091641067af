"""The template grammar: `${workflow.secrets.NAME}` placeholders in the string values of a JSON
document. Standard library only, no Django: the console and the runner client read templates the
same way with this one module."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from secrets_app.redaction import json_strings

# ${workflow.secrets.NAME}, NAME being a secret key. Lookalikes ($workflow.secrets.X,
# ${workflow.secret.X}, ${ workflow.secrets.X }) are not placeholders and are left alone.
PLACEHOLDER = re.compile(r"\$\{workflow\.secrets\.([A-Za-z_][A-Za-z0-9_.-]{0,127})\}")


def placeholders_in(document: Any) -> list[str]:
    """The secret keys a document's `${workflow.secrets.NAME}` placeholders name, sorted."""
    return sorted({name for text in json_strings(document) for name in PLACEHOLDER.findall(text)})


def substitute(document: Any, values: Mapping[str, str]) -> Any:
    """A copy of `document` with each placeholder replaced by `values[NAME]` (all must be given)."""

    def replace(text: str) -> str:
        return PLACEHOLDER.sub(lambda match: values[match.group(1)], text)

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return replace(item)
        if isinstance(item, Mapping):
            return {key: walk(value) for key, value in item.items()}
        if isinstance(item, (list, tuple)):
            return [walk(value) for value in item]
        return item

    return walk(document)


HIDDEN_NAME = "(hidden)"


def hide_names(document: Any, hidden: set[str]) -> Any:
    """A copy of `document` (keys and values) in which each name of `hidden` reads `(hidden)`,
    wherever it appears: a definition shown to someone who may not see those secrets."""
    if not hidden:
        return document
    pattern = re.compile("|".join(re.escape(name) for name in sorted(hidden, key=len, reverse=True)))

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return pattern.sub(HIDDEN_NAME, item)
        if isinstance(item, Mapping):
            return {walk(key): walk(value) for key, value in item.items()}
        if isinstance(item, (list, tuple)):
            return [walk(value) for value in item]
        return item

    return walk(document)


def placeholder(name: str) -> str:
    """The placeholder that names secret `name`."""
    return f"${{workflow.secrets.{name}}}"


def json_string_size(value: str) -> int:
    """The characters `value` takes inside a JSON string, as `json.dumps` writes it (\\uXXXX escapes)."""
    return len(json.dumps(value)) - 2


@dataclass(frozen=True)
class Template:
    """A JSON document to fill in: the names its placeholders use, how often each, and its size as
    JSON, so that the size of the filled-in document is known before it is built."""

    document: Any
    occurrences: Mapping[str, int]
    size: int

    @classmethod
    def of(cls, document: Any) -> Template:
        names = Counter(name for text in json_strings(document) for name in PLACEHOLDER.findall(text))
        return cls(document, dict(names), len(json.dumps(document)))

    @property
    def names(self) -> list[str]:
        return sorted(self.occurrences)

    def filled_size(self, value_sizes: Mapping[str, int]) -> int:
        """The size of the filled-in document as JSON, given each value's `json_string_size` (or a
        lower bound of it, for a lower bound of this)."""
        return self.size + sum(
            count * (value_sizes[name] - len(placeholder(name))) for name, count in self.occurrences.items()
        )
