"""Account Settings: the profile and your sessions (sign-in, sign-up, the password and two-factor are
django-allauth's pages: see secrets_app/identity.py)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from secrets_app.forms import ProfileForm
from secrets_app.http import client_ip
from secrets_app.selectors.audit import account_events_of
from secrets_app.selectors.sessions import session_for, sessions_of
from secrets_app.services.accounts import update_profile
from secrets_app.services.sessions import revoke_other_sessions, revoke_session
from secrets_app.views.base import console_view


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect("account_login")
    return redirect("developer-settings")


@login_required
@require_http_methods(["GET", "POST"])
def account_settings(request: HttpRequest) -> HttpResponse:
    """The profile form, and the user's sessions."""
    form = ProfileForm(request.POST or None, instance=request.user)
    if request.method == "POST" and form.is_valid():
        update_profile(user=request.user, **form.cleaned_data)
        messages.success(request, "Profile saved.")
        return redirect("account-settings")
    sessions = sessions_of(request.user, current_session_key=request.session.session_key, page=request.GET.get("page"))
    context = {
        "form": form,
        "section": "profile",
        "sessions": sessions,
        "account_events": account_events_of(request.user),
    }
    return render(request, "account/profile.html", context, status=400 if form.errors else 200)


@console_view
@require_POST
def session_revoke(request: HttpRequest, session_id: str) -> HttpResponse:
    """End one of your sessions; ending the current one signs you out."""
    found = session_for(request.user, session_id, current_session_key=request.session.session_key)
    revoke_session(actor=request.user, user_session=found, ip_address=client_ip(request))
    if found.is_current:
        logout(request)
        messages.success(request, "This session has ended: you are signed out.")
        return redirect("account_login")
    if found.execution:
        messages.success(
            request, f"Runner session of {found.execution.workflow_reference} ended; its execution is finished."
        )
    else:
        messages.success(request, f"{found.get_kind_display()} session ({found.device}) ended: it is signed out.")
    return redirect("account-settings")


@console_view
@require_POST
def sessions_revoke_others(request: HttpRequest) -> HttpResponse:
    """Sign out everywhere else: every session but this one ends."""
    ended = revoke_other_sessions(
        actor=request.user, current_session_key=request.session.session_key, ip_address=client_ip(request)
    )
    count = sum(ended.values())
    messages.success(request, f"Signed out everywhere else: {count} other session{'' if count == 1 else 's'} ended.")
    return redirect("account-settings")
