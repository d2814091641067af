"""The template grammar: `${workflow.secrets.NAME}` placeholders in the string values of a JSON
document. Standard library only, no Django: the console and the runner client read templates the
same way with this one module."""

from __future__ import annotations

import re
from collections.abc import Mapping
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
