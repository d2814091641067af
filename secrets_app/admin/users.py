"""Django's user admin, audited: every change to what a user may reach (active, staff, superuser,
groups, which tag grants reach through, and permissions) is an audit event, and a password set here
ends every session of that user, runner sessions included."""

from __future__ import annotations

from typing import Any

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.socialaccount.models import SocialAccount, SocialApp, SocialToken
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.http import HttpRequest, HttpResponse

from secrets_app.errors import AccessDenied
from secrets_app.http import client_ip
from secrets_app.services.accounts import after_password_set_by_admin, record_user_access_change

User = get_user_model()
# The fields of the user form that change what the user may reach.
ACCESS_FIELDS = ("is_active", "is_staff", "is_superuser")
ACCESS_RELATIONS = ("groups", "user_permissions")


class AuditedUserAdmin(UserAdmin):
    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        before = User.objects.filter(pk=obj.pk).values(*ACCESS_FIELDS).first() if change else None
        super().save_model(request, obj, form, change)
        if before is not None:
            request._access_changes = {
                field: {"from": before[field], "to": getattr(obj, field)}
                for field in ACCESS_FIELDS
                if before[field] != getattr(obj, field)
            }

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        related = [name for name in ACCESS_RELATIONS if name in form.fields]
        before = {name: set(getattr(form.instance, name).values_list("name", flat=True)) for name in related}
        super().save_related(request, form, formsets, change)
        if form.instance.pk == request.user.pk and "groups" in form.changed_data:
            # A group may hold tag grants: nobody joins one by their own admin powers (rolled back).
            raise AccessDenied("You may not change your own groups: another administrator does that.")
        changes = dict(getattr(request, "_access_changes", {}))
        for name in related:
            after = set(getattr(form.instance, name).values_list("name", flat=True))
            if change and after != before[name]:
                changes[name] = {"added": sorted(after - before[name]), "removed": sorted(before[name] - after)}
        if changes:
            record_user_access_change(
                actor=request.user, user=form.instance, changes=changes, ip_address=client_ip(request)
            )

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        response = super().user_change_password(request, id, form_url)
        user = User.objects.filter(pk=id).first()
        if request.method == "POST" and response.status_code == 302 and user is not None:
            after_password_set_by_admin(actor=request.user, user=user, ip_address=client_ip(request))
        return response


admin.site.unregister(User)
admin.site.register(User, AuditedUserAdmin)

# django-allauth's own records (second factors, e-mail addresses, single sign-on links and tokens,
# provider apps) change only through its audited pages, by their owner; the provider comes from the
# environment (README: Single sign-on).
for model in (Authenticator, EmailAddress, SocialAccount, SocialApp, SocialToken):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
