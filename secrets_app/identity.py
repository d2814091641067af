"""django-allauth, fitted to the console: who may sign up, how a sign-up answers, how TOTP secrets
are stored, which name a sign-in lockout counts, and the audit trail of identity events.

The receivers at the bottom turn allauth's signals (a factor added or removed, a recovery code
used, a password changed or reset, a sign-up) into audited writes of `services.accounts`.
"""

from __future__ import annotations

from typing import Any

from allauth.account import signals as account_signals
from allauth.account.adapter import DefaultAccountAdapter, get_adapter
from allauth.account.forms import ChangePasswordForm
from allauth.account.forms import LoginForm as AllauthLoginForm
from allauth.account.forms import SignupForm as AllauthSignupForm
from allauth.account.internal.flows.email_verification import (
    add_email_verification_sent_message,
    send_verification_email_to_address,
)
from allauth.account.internal.userkit import filter_users_by_email
from allauth.account.models import EmailAddress
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.mfa import signals as mfa_signals
from allauth.mfa.adapter import DefaultMFAAdapter
from allauth.mfa.base.forms import AuthenticateForm, ReauthenticateForm
from allauth.mfa.models import Authenticator
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.hashers import make_password
from django.core.validators import MaxLengthValidator
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from secrets_app import crypto, errors
from secrets_app.http import client_ip
from secrets_app.reauthentication import recently_authenticated
from secrets_app.services import accounts

# The longest name a sign-in takes: a username is at most 150 characters, an address 254 (RFC 5321).
LOGIN_MAX_LENGTH = 254


def sign_in_name(request: HttpRequest, credentials: dict[str, Any] | None) -> str | None:
    """The name django-axes counts a sign-in attempt under: the account's username, whether it was
    asked for by username (the API, the admin) or by e-mail address (the sign-in page), so one
    account has one count. An unknown name is counted as given."""
    credentials = credentials or {}
    name = credentials.get("username") or credentials.get("email") or credentials.get("login")
    if name is None:
        name = request.POST.get("login") or request.POST.get("username") if request is not None else None
    if not name or "\x00" in name or len(name) > LOGIN_MAX_LENGTH:
        return name
    # Sign-in finds an account whatever the case of its name: so must the count.
    by = "email__iexact" if "@" in name else "username__iexact"
    user = get_user_model().objects.filter(**{by: name}).only("username").first()
    return user.get_username() if user else name.lower()


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return settings.SIGNUP_OPEN and not settings.SSO_ONLY

    def is_reauthentication_required(self, *, app: str, **kwargs: Any) -> bool:
        # allauth's own sensitive pages (two-factor) ask by the console's rule: a password, TOTP,
        # passkey or sign-on check within REAUTHENTICATION_MINUTES, sign-in included.
        request = _current_request()
        return request is None or not recently_authenticated(request)


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    """Single sign-on: the provider vouches for an address it says is verified, so its users get an
    account even when sign-up is closed; never one that takes over an existing account's address."""

    def pre_social_login(self, request: HttpRequest, sociallogin: Any) -> None:
        if sociallogin.is_existing or sociallogin.state.get("process") == "connect":
            return  # signing in with a linked identity, or its owner linking it
        # Only a confirmed address is an account's: an unconfirmed one could be anyone's squat.
        taken = [
            address.email
            for address in sociallogin.email_addresses
            if EmailAddress.objects.filter(email__iexact=address.email, verified=True).exists()
        ]
        if taken:
            # An account is linked by its owner (Account Settings → Single sign-on), never by a
            # matching address: whoever controls the provider's claim would take the account over.
            messages.error(
                request,
                "An account with this e-mail address exists already. Sign in to it, then connect single sign-on "
                "under Account Settings → Single sign-on.",
            )
            raise ImmediateHttpResponse(redirect("account_login"))

    def is_open_for_signup(self, request: HttpRequest, sociallogin: Any) -> bool:
        verified = any(address.verified for address in sociallogin.email_addresses)
        return verified or (settings.SIGNUP_OPEN and not settings.SSO_ONLY)


class MFAAdapter(DefaultMFAAdapter):
    """Stores TOTP secrets sealed under the console's key ring, never in the clear."""

    def encrypt(self, text: str) -> str:
        return crypto.seal_text(text, crypto.TOTP_ASSOCIATED_DATA)

    def decrypt(self, encrypted_text: str) -> str:
        return crypto.unseal_text(encrypted_text, crypto.TOTP_ASSOCIATED_DATA)


class SignupForm(AllauthSignupForm):
    """allauth's sign-up (an address and a password), whose answer is the same whether the address
    is new or already has an account: "we have sent an e-mail to …" and the "check your e-mail"
    page. The new user confirms the address from that mail, then signs in; the owner of an address
    that has an account is told so by mail, and nothing else happens."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["email"].max_length = LOGIN_MAX_LENGTH
        self.fields["email"].validators.append(MaxLengthValidator(LOGIN_MAX_LENGTH))

    def validate_unique_email(self, value: str) -> str:
        # allauth refuses a known address out loud unless verification is mandatory; here it is
        # never refused on the page (try_save answers it by mail), whatever the verification mode.
        self.account_already_exists = filter_users_by_email(value, prefer_verified=False) != []
        return value

    def try_save(self, request: HttpRequest) -> tuple[Any, HttpResponse | None]:
        email = self.cleaned_data["email"]
        adapter = get_adapter()
        user, sent = None, False
        if self.account_already_exists:
            # The password is hashed on this path too: a new account's sign-up must not take
            # measurably longer than a known address's.
            make_password(self.cleaned_data.get("password1"))
            adapter.send_account_already_exists_mail(email)
        else:
            user = self.save(request)
            accounts.record_sign_up(user=user, method="password", ip_address=client_ip(request))
            address = EmailAddress.objects.get_for_user(user, email)
            # Adds the message below itself when it sends (not when its rate limit holds the mail back).
            sent = send_verification_email_to_address(request, address, signup=True)
        if not sent:
            add_email_verification_sent_message(request, email, signup=True)
        # Both answers set the same cookie (allauth keeps the new address in the session).
        request.session["account_signup_answered"] = True
        return None, adapter.respond_email_verification_sent(request, user)


class LoginForm(AllauthLoginForm):
    """allauth's sign-in, by username or e-mail address. With SSO_ONLY, only superusers may sign in
    with a password (break-glass); everyone else uses single sign-on."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["login"].label = "Username or e-mail"
        self.fields["login"].widget.attrs["autocomplete"] = "username"
        self.fields["login"].max_length = LOGIN_MAX_LENGTH
        self.fields["login"].validators.append(MaxLengthValidator(LOGIN_MAX_LENGTH))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        user = getattr(self, "user", None)
        if settings.SSO_ONLY and user is not None and not user.is_superuser:
            raise forms.ValidationError("Sign in with single sign-on: password sign-in is for administrators only.")
        return cleaned


class CountedChangePasswordForm(ChangePasswordForm):
    """allauth's password change, whose check of the current password is a sign-in attempt: a
    wrong guess counts toward the sign-in limits (django-axes), and a locked account cannot test
    passwords here either."""

    def clean_oldpassword(self) -> str:
        old_password = self.cleaned_data.get("oldpassword", "")
        request = getattr(self, "request", None) or _current_request()
        if authenticate(request, username=self.user.get_username(), password=old_password) is None:
            raise forms.ValidationError("Please type your current password.")
        return old_password


def check_second_factor(request: HttpRequest, user: Any, code: str, *, reauthenticated: bool = False) -> bool:
    """Whether `code` is a current TOTP code or an unused recovery code of the user's (allauth's
    check); a right one is recorded in the session as a check of who is there, and a recovery code
    is used up. Raises errors.TooManyCodes past allauth's limit of wrong codes (10 in 5 minutes)."""
    form_class = ReauthenticateForm if reauthenticated else AuthenticateForm
    form = form_class(data={"code": code}, user=user)
    if not form.is_valid():
        if any(error.code == "too_many_login_attempts" for error in form.errors.as_data().get("code", [])):
            raise errors.TooManyCodes()
        return False
    form.save()
    return True


def _current_request() -> HttpRequest | None:
    from allauth.core import context

    return context.request


def _session_key(request: HttpRequest | None) -> str | None:
    return request.session.session_key if request is not None and hasattr(request, "session") else None


# Receivers: identity events, audited through services.accounts.


@receiver(account_signals.password_changed, dispatch_uid="secrets_app.identity.password_changed")
def _password_changed(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    accounts.after_password_change(user=user, current_session_key=_session_key(request), ip_address=client_ip(request))


@receiver(account_signals.password_reset, dispatch_uid="secrets_app.identity.password_reset")
def _password_reset(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    accounts.after_password_reset(user=user, ip_address=client_ip(request))


@receiver(account_signals.user_signed_up, dispatch_uid="secrets_app.identity.signed_up")
def _signed_up(sender: Any, request: HttpRequest, user: Any, sociallogin: Any = None, **kwargs: Any) -> None:
    # Sign-up by password is audited by SignupForm; this is the one through single sign-on.
    if sociallogin is not None:
        accounts.record_sign_up(user=user, method="sso", ip_address=client_ip(request))


@receiver(mfa_signals.authenticator_added, dispatch_uid="secrets_app.identity.factor_added")
def _factor_added(sender: Any, request: HttpRequest, user: Any, authenticator: Authenticator, **kwargs: Any) -> None:
    accounts.record_factor_added(user=user, factor=authenticator.type, ip_address=client_ip(request))


@receiver(mfa_signals.authenticator_removed, dispatch_uid="secrets_app.identity.factor_removed")
def _factor_removed(sender: Any, request: HttpRequest, user: Any, authenticator: Authenticator, **kwargs: Any) -> None:
    accounts.after_factor_removed(
        user=user,
        factor=authenticator.type,
        current_session_key=_session_key(request),
        ip_address=client_ip(request),
    )


@receiver(mfa_signals.authenticator_reset, dispatch_uid="secrets_app.identity.factor_reset")
def _factor_reset(sender: Any, request: HttpRequest, user: Any, authenticator: Authenticator, **kwargs: Any) -> None:
    accounts.record_recovery_codes_regenerated(user=user, ip_address=client_ip(request))


@receiver(mfa_signals.authenticator_used, dispatch_uid="secrets_app.identity.factor_used")
def _factor_used(sender: Any, request: HttpRequest, user: Any, authenticator: Authenticator, **kwargs: Any) -> None:
    if authenticator.type == Authenticator.Type.RECOVERY_CODES:
        # The check used the code on a row of its own: count what is left from the database.
        left = Authenticator.objects.get(pk=authenticator.pk).wrap().get_unused_codes()
        accounts.record_recovery_code_used(user=user, unused=len(left), ip_address=client_ip(request))


@receiver(account_signals.authentication_step_completed, dispatch_uid="secrets_app.identity.reauthenticated")
def _reauthenticated(sender: Any, request: HttpRequest, user: Any, method: str, **extra: Any) -> None:
    # Every "confirm it's you", on the pages (allauth's) and through the API.
    if extra.get("reauthenticated"):
        accounts.record_reauthentication(user=user, method=extra.get("type", method), ip_address=client_ip(request))
