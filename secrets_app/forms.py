"""Browser forms. They collect input; the services validate it and write."""

from __future__ import annotations

import datetime
import json
import re
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib.auth import get_user_model
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils import timezone

from . import crypto, dotenv, strict_json
from .models import AuditEvent, Role
from .validators import (
    EXPIRED_SECRET_GRACE_MAX_DAYS,
    SECRET_KEY_MAX_LENGTH,
    SECRET_VALUE_MAX_BYTES,
    TEMPLATE_MAX_NAMES,
    UNREAD_DAYS_MAX,
    parse_secret_expiry,
    parse_unread_days,
)

TAG_SEPARATORS = re.compile(r"[\s,]+")


def split_tags(text: str) -> list[str]:
    """Tags typed as one line, separated by commas or spaces."""
    return [name for name in TAG_SEPARATORS.split(text or "") if name]


class ProfileForm(forms.ModelForm):
    # The address is changed on Account Settings → E-mail (allauth's), which confirms it.
    class Meta:
        model = get_user_model()
        fields = ("first_name", "last_name")


class ValueLookupForm(forms.Form):
    value = forms.CharField(
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
        help_text="Compared by fingerprint with the values in this workspace only; the search is audited.",
    )


class SecretCreateForm(forms.Form):
    key = forms.CharField(
        max_length=SECRET_KEY_MAX_LENGTH,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "placeholder": "API_KEY"}),
        help_text="Letters, digits, _ - . ; starts with a letter or _ ; at most 128 characters.",
    )
    value = forms.CharField(
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 4, "autocomplete": "off", "spellcheck": "false"}),
        help_text="Multi-line values are kept as typed. You will not be able to see this value again.",
    )
    value_file = forms.FileField(
        required=False,
        label="…or upload the value from a file",
        help_text="Stored byte for byte (e.g. a PEM key). UTF-8 text, at most 64 KiB.",
    )
    tags = forms.CharField(
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "team:ops env:prod", "autocomplete": "off"}),
        help_text="key or key:value (e.g. team:ops env:prod), separated by spaces or commas.",
    )
    expires_at = forms.CharField(
        required=False,
        label="Expires",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="A date and time in the future, in the console's time zone ({tz}). After it, runners are "
        "refused the value. It cannot be changed later.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["expires_at"]
        field.help_text = field.help_text.format(tz=timezone.get_current_timezone_name())

    def clean_expires_at(self) -> datetime.datetime | None:
        text = self.cleaned_data["expires_at"]
        return parse_secret_expiry(text) if text else None

    def clean_value(self) -> str:
        # Browsers submit every line break in a textarea as CRLF, whatever was pasted; the
        # value the user saw had plain LF breaks. (The API and file upload store bytes as given.)
        return self.cleaned_data["value"].replace("\r\n", "\n")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        uploaded = cleaned.get("value_file")
        if uploaded and cleaned.get("value"):
            raise forms.ValidationError("Type the value or upload a file, not both.")
        if uploaded:
            if uploaded.size > SECRET_VALUE_MAX_BYTES:
                self.add_error("value_file", f"The file is {uploaded.size} bytes; the limit is 64 KiB.")
                return cleaned
            try:
                cleaned["value"] = uploaded.read().decode("utf-8")
            except UnicodeDecodeError:
                self.add_error("value_file", "The file is not UTF-8 text; encode binary data (e.g. base64) first.")
        return cleaned

    def tag_names(self) -> list[str]:
        return split_tags(self.cleaned_data.get("tags", ""))


class DotenvImportForm(forms.Form):
    """Step 1 of importing a .env file: the text, pasted or uploaded, and tags for every secret."""

    dotenv = forms.CharField(
        label="Paste a .env file",
        required=False,
        strip=False,
        widget=forms.Textarea(
            attrs={"rows": 12, "autocomplete": "off", "spellcheck": "false", "placeholder": "API_KEY=...\n# comment"}
        ),
        help_text="KEY=value lines; quotes, comments and `export` are understood. "
        f"At most {dotenv.MAX_BYTES // 1024} KiB and {dotenv.MAX_LINES} lines.",
    )
    dotenv_file = forms.FileField(
        required=False, label="…or upload the file", help_text="A UTF-8 text file such as .env."
    )
    tags = forms.CharField(
        required=False,
        label="Tags for every imported secret",
        widget=forms.TextInput(attrs={"placeholder": "team:ops env:prod", "autocomplete": "off"}),
        help_text="key or key:value (e.g. team:ops env:prod), separated by spaces or commas.",
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        uploaded = cleaned.get("dotenv_file")
        if uploaded and cleaned.get("dotenv"):
            raise forms.ValidationError("Paste the file or upload it, not both.")
        if uploaded:
            if uploaded.size > dotenv.MAX_BYTES:
                self.add_error("dotenv_file", f"The file is {uploaded.size} bytes; the limit is 256 KiB.")
                return cleaned
            try:
                cleaned["dotenv"] = uploaded.read().decode("utf-8")
            except UnicodeDecodeError:
                self.add_error("dotenv_file", "The file is not UTF-8 text.")
        elif not cleaned.get("dotenv") and not self.errors:
            raise forms.ValidationError("Paste a .env file or upload one.")
        return cleaned

    def tag_names(self) -> list[str]:
        return split_tags(self.cleaned_data.get("tags", ""))


# A preview may be confirmed for this long; after that the file has to be given again.
PENDING_IMPORT_MAX_AGE_SECONDS = 15 * 60


def seal_pending_import(*, text: str, tag_names: list[str], user_id: int, workspace_id: int) -> str:
    """The previewed file and its tags as an opaque token for the confirm step (see views.imports)."""
    associated_data = crypto.pending_import_associated_data(user_id=user_id, workspace_id=workspace_id)
    return crypto.seal_token(json.dumps(tag_names) + "\n" + text, associated_data)


class DotenvConfirmForm(forms.Form):
    """Step 2: the sealed token of the preview being confirmed, opened only by its user, for its
    workspace, within PENDING_IMPORT_MAX_AGE_SECONDS."""

    pending = forms.CharField(widget=forms.HiddenInput, strip=False)

    def __init__(self, *args: Any, user_id: int, workspace_id: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.associated_data = crypto.pending_import_associated_data(user_id=user_id, workspace_id=workspace_id)

    def clean_pending(self) -> tuple[str, list[str]]:
        """The file's text and its tags."""
        try:
            payload = crypto.unseal_token(
                self.cleaned_data["pending"], self.associated_data, max_age_seconds=PENDING_IMPORT_MAX_AGE_SECONDS
            )
        except crypto.TokenExpired:
            raise forms.ValidationError(
                "This preview is more than 15 minutes old, so nothing was imported: give the file again.",
                code="expired",
            ) from None
        except crypto.DecryptionFailed:
            raise forms.ValidationError(
                "This preview could not be opened (it was altered, or made for another user or workspace), "
                "so nothing was imported: give the file again.",
                code="invalid",
            ) from None
        tags, _, text = payload.partition("\n")
        return text, json.loads(tags)


class TagAddForm(forms.Form):
    tags = forms.CharField(
        label="New tags",
        widget=forms.TextInput(attrs={"placeholder": "team:ops env:prod", "autocomplete": "off"}),
        help_text="key or key:value (e.g. team:ops env:prod), separated by spaces or commas.",
    )

    def tag_names(self) -> list[str]:
        return split_tags(self.cleaned_data["tags"])


class SecretFilterForm(forms.Form):
    tag = forms.CharField(required=False, label="Tag")
    q = forms.CharField(required=False, label="Key contains", max_length=SECRET_KEY_MAX_LENGTH)
    unread_days = forms.CharField(
        required=False,
        label="Not read in (days)",
        widget=forms.NumberInput(attrs={"min": 1, "max": UNREAD_DAYS_MAX, "id": "id_filter_unread_days"}),
    )

    def clean_unread_days(self) -> int | None:
        text = self.cleaned_data["unread_days"]
        return parse_unread_days(text) if text else None


class WorkspaceSettingsForm(forms.Form):
    expired_secret_grace_days = forms.IntegerField(
        label="Grace for expired secrets (days)",
        min_value=0,
        max_value=EXPIRED_SECRET_GRACE_MAX_DAYS,
        help_text="For this many days after a secret expires, runners may still read it (each read is noted "
        "in the audit log). 0: an expired secret is refused at once.",
    )


class MfaPolicyForm(forms.Form):
    require_mfa = forms.BooleanField(
        label="Require two-factor authentication",
        required=False,
        help_text="Members without a second factor (TOTP or a passkey) keep seeing this workspace but may not use "
        "its secrets, workflows or executions until they add one. Runs already going keep working.",
    )


# Days a filter may name: wide enough for any log, narrow enough that midnight of the day after
# is a datetime in every time zone.
AUDIT_FIRST_DAY = datetime.date(2000, 1, 1)
AUDIT_LAST_DAY = datetime.date(9998, 12, 31)


def _audit_day_field(label: str) -> forms.DateField:
    return forms.DateField(
        required=False,
        label=label,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        validators=[MinValueValidator(AUDIT_FIRST_DAY), MaxValueValidator(AUDIT_LAST_DAY)],
        error_messages={"invalid": "Enter a date as YYYY-MM-DD."},
    )


class AuditFilterForm(forms.Form):
    """The Activity page's filters (GET); the same ones choose what an export holds."""

    key = forms.CharField(required=False, label="Key contains", max_length=SECRET_KEY_MAX_LENGTH)
    user = forms.CharField(required=False, label="Username (exact)", max_length=150)
    action = forms.ChoiceField(required=False, choices=[("", "All actions"), *AuditEvent.Action.choices])
    date_from = _audit_day_field("From")
    date_to = _audit_day_field("To (included)")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        first, last = cleaned.get("date_from"), cleaned.get("date_to")
        if first and last and first > last:
            self.add_error("date_to", "The end date is before the start date.")
        return cleaned

    def active(self) -> dict[str, str]:
        """The filters in use, as they go in an address (dates as YYYY-MM-DD)."""
        return {name: str(value) for name, value in self.cleaned_data.items() if value}

    def query_string(self) -> str:
        return urlencode(self.active())

    def selector_arguments(self) -> dict[str, Any]:
        """Keyword arguments for `selectors.audit_events_in`."""
        data = self.cleaned_data
        return {
            "key": data["key"],
            "username": data["user"],
            "action": data["action"],
            "first_day": data["date_from"],
            "last_day": data["date_to"],
        }


class GrantForm(forms.Form):
    tag = forms.CharField(
        max_length=193,
        widget=forms.TextInput(attrs={"placeholder": "team:ops", "autocomplete": "off", "list": "workspace-tags"}),
        help_text="An existing tag, or a new one to put on secrets later.",
    )
    grantee_kind = forms.ChoiceField(label="Grant to", choices=[("user", "User"), ("group", "Group")], initial="user")
    grantee = forms.CharField(label="User or group name", max_length=150)
    permissions = forms.MultipleChoiceField(
        choices=[
            ("view", "See the tagged secrets"),
            ("use", "Use their values at run time"),
            ("delete", "Delete them"),
        ],
        widget=forms.CheckboxSelectMultiple,
        initial=["view"],
    )

    def grantee_arguments(self) -> dict[str, str]:
        """The service's keyword for the grantee: `username` or `group_name`."""
        key = "username" if self.cleaned_data["grantee_kind"] == "user" else "group_name"
        return {key: self.cleaned_data["grantee"]}


class WorkflowRegisterForm(forms.Form):
    name = forms.CharField(
        max_length=100, widget=forms.TextInput(attrs={"placeholder": "nightly-report", "autocomplete": "off"})
    )
    definition = forms.JSONField(
        decoder=strict_json.Decoder,
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
        help_text="A JSON object; use ${workflow.secrets.NAME} where a task needs a secret, e.g. "
        '{"tasks": [{"name": "fetch", "inputs": {"token": "${workflow.secrets.API_KEY}"}}]}',
    )
    secrets = forms.CharField(
        label="Secrets its code reads",
        required=False,
        max_length=TEMPLATE_MAX_NAMES * (SECRET_KEY_MAX_LENGTH + 1),
        widget=forms.TextInput(
            attrs={"placeholder": "DB_URL SIGNING_KEY", "autocomplete": "off", "spellcheck": "false"}
        ),
        help_text="Keys, separated by spaces or commas, besides those the definition names. Its runs may read "
        "these and the definition's, and no others.",
    )

    def clean_secrets(self) -> list[str]:
        return [key for key in TAG_SEPARATORS.split(self.cleaned_data["secrets"]) if key]


class LaunchForm(forms.Form):
    workspace = forms.ChoiceField(
        label="Run in",
        help_text="Runners read secrets only when the workflow runs in the workspace it was registered in.",
    )

    def __init__(self, *args: Any, workspaces: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["workspace"].choices = [(w.slug, w.name) for w in workspaces]


class WorkspaceCreateForm(forms.Form):
    name = forms.CharField(max_length=100)
    slug = forms.SlugField(max_length=64, help_text="Used in addresses: lowercase letters, digits and hyphens.")


class MemberAddForm(forms.Form):
    username = forms.CharField(label="Username or e-mail", max_length=254)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
