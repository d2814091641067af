"""Formats of keys, values, tags and slugs; each rule is written once, here."""

import datetime
import re

from django.core.exceptions import ValidationError
from django.utils import timezone

SECRET_KEY_MAX_LENGTH = 128
SECRET_KEY_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")
SECRET_VALUE_MAX_BYTES = 64 * 1024
TAG_MAX_LENGTH = 64 + 1 + 128
WORKFLOW_NAME_MAX_LENGTH = 100
WORKFLOW_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
TAG_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(:[A-Za-z0-9_.@-]{1,128})?")
# Workspace slugs: Django's slug characters (SlugField), at most 64.
SLUG_PATTERN = re.compile(r"[-a-zA-Z0-9_]{1,64}")
# Different secrets one template (a resolve, a workflow definition) may name.
TEMPLATE_MAX_NAMES = 1000
# Tags one secret carries, and tags one request may give: AWS Secrets Manager's limit. Each list of
# a secret's tags, on every page and in every answer, is bounded by it.
SECRET_MAX_TAGS = 50


def validate_secret_key(key: str) -> None:
    """Keys: letters, digits, '_', '-' and '.', starting with a letter or '_', at most 128."""
    if not isinstance(key, str) or not SECRET_KEY_PATTERN.fullmatch(key):
        raise ValidationError(
            "Keys use letters, digits, '_', '-' and '.', start with a letter or '_', "
            f"and are at most {SECRET_KEY_MAX_LENGTH} characters.",
            code="invalid_key",
        )


def printable_key(text: str) -> str:
    """A key as the caller sent it, safe to store and show: control characters escaped, cut to the
    key length limit. A well-formed key comes back unchanged."""
    return text.encode("unicode_escape").decode("ascii")[:SECRET_KEY_MAX_LENGTH]


def validate_secret_value(value: str) -> None:
    """Values: non-empty Unicode text without NUL, at most 64 KiB of UTF-8."""
    if not isinstance(value, str) or value == "":
        raise ValidationError("The value must not be empty.", code="empty_value")
    if "\x00" in value:
        raise ValidationError(
            "The value must not contain NUL characters; encode binary data (e.g. base64).", code="invalid_value"
        )
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValidationError("The value must be valid Unicode text.", code="invalid_value") from None
    if size > SECRET_VALUE_MAX_BYTES:
        raise ValidationError(
            f"The value is {size} bytes; the limit is {SECRET_VALUE_MAX_BYTES} bytes (64 KiB).",
            code="value_too_large",
        )


# Far enough for any real expiry, near enough that adding a workspace's grace stays a valid date.
SECRET_EXPIRY_BEFORE = datetime.datetime(9000, 1, 1, tzinfo=datetime.UTC)
EXPIRY_FORMAT_MESSAGE = (
    "Enter the expiry as an ISO 8601 date (2030-01-31) or date and time (2030-01-31T18:00, with an optional "
    "offset such as +02:00 or Z)."
)


def parse_secret_expiry(text: str) -> datetime.datetime:
    """An expiry as typed or sent: an ISO 8601 date (the midnight starting it) or date and time;
    without an offset, in the site's time zone."""
    if not isinstance(text, str):
        raise ValidationError(EXPIRY_FORMAT_MESSAGE, code="invalid_expiry")
    try:
        parsed = datetime.datetime.fromisoformat(text.strip())
        parsed = timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed
        # A moment that has no UTC time (0001-01-01T00:30+01:00 is in the year 0) cannot be compared.
        parsed.astimezone(datetime.UTC)
    except (ValueError, OverflowError):
        raise ValidationError(EXPIRY_FORMAT_MESSAGE, code="invalid_expiry") from None
    return parsed


def validate_secret_expiry(expires_at: datetime.datetime, *, now: datetime.datetime) -> None:
    """Expiry: a moment in the future (secrets are immutable, so it is set once, at creation)."""
    if not isinstance(expires_at, datetime.datetime) or timezone.is_naive(expires_at):
        raise ValidationError(EXPIRY_FORMAT_MESSAGE, code="invalid_expiry")
    if expires_at <= now:
        shown = timezone.localtime(expires_at).strftime("%Y-%m-%d %H:%M %Z")
        raise ValidationError(f"The expiry must be in the future; {shown} has passed.", code="expiry_in_past")
    if expires_at >= SECRET_EXPIRY_BEFORE:
        raise ValidationError("The expiry must be before the year 9000.", code="expiry_too_far")


# Longest grace a workspace may give its expired secrets.
EXPIRED_SECRET_GRACE_MAX_DAYS = 365


def validate_expired_secret_grace_days(days: int) -> None:
    """A workspace's grace for expired secrets: a whole number of days from 0 (none) to 365."""
    if not isinstance(days, int) or isinstance(days, bool) or not 0 <= days <= EXPIRED_SECRET_GRACE_MAX_DAYS:
        raise ValidationError(
            f"Give a whole number of days from 0 (no grace) to {EXPIRED_SECRET_GRACE_MAX_DAYS}.", code="invalid_days"
        )


UNREAD_DAYS_MAX = 3650
# Whole numbers a request names (pages, row ids) have at most this many digits: any larger one names
# nothing, and some would not fit the database's 64-bit integers.
MAX_NUMBER_DIGITS = 18


def parse_number(text: str) -> int | None:
    """A whole number written in ASCII digits (at most MAX_NUMBER_DIGITS of them), or None."""
    if not (text.isascii() and text.isdigit()) or len(text) > MAX_NUMBER_DIGITS:
        return None
    return int(text)


def parse_unread_days(text: str) -> int:
    """The "not read in N days" filter: N, a whole number of days from 1 to 3650."""
    if not re.fullmatch(r"[0-9]{1,5}", text.strip()) or not 1 <= int(text) <= UNREAD_DAYS_MAX:
        raise ValidationError(
            f"Give a whole number of days from 1 to {UNREAD_DAYS_MAX}, not {text[:20]!r}.",
            code="invalid_days",
        )
    return int(text)


def validate_tag_name(name: str) -> None:
    """Tags: `key` or `key:value`, like `team:ops` or `env:prod`."""
    if not isinstance(name, str) or not TAG_PATTERN.fullmatch(name):
        raise ValidationError(
            f"Tag {name!r} is not valid: use `key` or `key:value`; the key has letters, digits, "
            "'_', '-' and '.', starts with a letter or digit and is at most 64 characters; the value "
            "has letters, digits, '_', '-', '.' and '@' and is at most 128 characters.",
            code="invalid_tag",
        )


def validate_tag_count(count: int) -> None:
    """At most SECRET_MAX_TAGS tags on one secret, and in one request."""
    if count > SECRET_MAX_TAGS:
        raise ValidationError(
            f"A secret carries at most {SECRET_MAX_TAGS} tags (and a request gives at most as many), not {count}.",
            code="too_many_tags",
        )


def validate_workflow_name(name: str) -> None:
    """Workflow names: letters, digits, '_', '-' and '.', starting with a letter or digit, at most 100."""
    if not isinstance(name, str) or not WORKFLOW_NAME_PATTERN.fullmatch(name):
        raise ValidationError(
            "Workflow names use letters, digits, '_', '-' and '.', start with a letter or digit, "
            f"and are at most {WORKFLOW_NAME_MAX_LENGTH} characters.",
            code="invalid_workflow_name",
        )
