from allauth.mfa.webauthn import views as webauthn_views
from django.urls import include, path

from secrets_app.api import v1
from secrets_app.views import access, accounts, activity, health, imports, runs, secrets, workspaces
from secrets_app.views.errors import malformed_input_is_400

developer = "settings/developer/<slug:slug>"

ui_patterns = [
    path("", accounts.home, name="home"),
    # A security key's answer is parsed by fido2, which raises on a malformed one: a 400, not a 500.
    *[
        path(f"accounts/2fa/webauthn/{route}", malformed_input_is_400(view), name=name)
        for route, view, name in (
            ("add/", webauthn_views.add_webauthn, "mfa_add_webauthn"),
            ("login/", webauthn_views.login_webauthn, "mfa_login_webauthn"),
            ("reauthenticate/", webauthn_views.reauthenticate_webauthn, "mfa_reauthenticate_webauthn"),
            ("signup/", webauthn_views.signup_webauthn, "mfa_signup_webauthn"),
        )
    ],
    # Sign-in, sign-up, sign-out, password change and reset, e-mail, two-factor, single sign-on.
    path("accounts/", include("allauth.urls")),
    path("settings/account/", accounts.account_settings, name="account-settings"),
    path("settings/account/sessions/revoke-others/", accounts.sessions_revoke_others, name="sessions-revoke-others"),
    path("settings/account/sessions/<str:session_id>/revoke/", accounts.session_revoke, name="session-revoke"),
    path("settings/developer/", secrets.developer_settings, name="developer-settings"),
    path("settings/workspaces/", workspaces.workspace_list, name="workspaces"),
    path("settings/workspaces/new/", workspaces.workspace_new, name="workspace-new"),
    path(f"{developer}/secrets/", secrets.secrets_page, name="secrets"),
    path(f"{developer}/value-lookup/", secrets.value_lookup, name="value-lookup"),
    # Not under secrets/: a secret may be called "import".
    path(f"{developer}/import/", imports.secrets_import, name="secrets-import"),
    path(f"{developer}/import/confirm/", imports.secrets_import_confirm, name="secrets-import-confirm"),
    path(f"{developer}/secrets/<str:key>/", secrets.secret_detail, name="secret-detail"),
    path(f"{developer}/secrets/<str:key>/delete/", secrets.secret_delete, name="secret-delete"),
    path(f"{developer}/secrets/<str:key>/tags/", secrets.secret_tags_add, name="secret-tags-add"),
    path(
        f"{developer}/secrets/<str:key>/tags/<str:tag>/remove/",
        secrets.secret_tag_remove,
        name="secret-tag-remove",
    ),
    path(f"{developer}/access/", access.access_page, name="access"),
    path(f"{developer}/access/grants/<str:grant_id>/revoke/", access.grant_revoke, name="grant-revoke"),
    path(f"{developer}/access/tags/<str:tag>/delete/", access.tag_delete, name="tag-delete"),
    path(f"{developer}/access/tags/<str:tag>/protect/", access.tag_protect, name="tag-protect"),
    path(f"{developer}/approvals/", runs.approvals_page, name="approvals"),
    path("settings/approvals/<str:approval_id>/<str:decision>/", runs.approval_decide, name="approval-decide"),
    path(f"{developer}/workflows/", runs.workflows_page, name="workflows"),
    path(f"{developer}/workflows/<str:name>/launch/", runs.workflow_launch, name="workflow-launch"),
    path(f"{developer}/workflows/<str:name>/delete/", runs.workflow_delete, name="workflow-delete"),
    path(f"{developer}/executions/", runs.executions_page, name="executions"),
    path("settings/executions/<str:execution_id>/finish/", runs.execution_finish, name="execution-finish"),
    path("settings/executions/<str:execution_id>/launched/", runs.execution_launched, name="execution-launched"),
    path(f"{developer}/activity/", activity.activity_page, name="activity"),
    path(f"{developer}/activity.<str:export_format>", activity.activity_export, name="activity-export"),
    path(f"{developer}/settings/", workspaces.workspace_settings_page, name="workspace-settings"),
    path(f"{developer}/settings/two-factor/", workspaces.workspace_mfa_policy, name="workspace-mfa-policy"),
    path(f"{developer}/members/", workspaces.members_page, name="members"),
    path(f"{developer}/members/<str:username>/", workspaces.member_change, name="member-change"),
]

# The JSON API (secrets_app/api/): its routes, methods and schemas are declared by its routers.
api_patterns = [path("api/v1/", include((v1.urlpatterns(), "ninja"), namespace="api-v1"))]

# For load balancers: the process is up; the process can reach its database and cache.
health_patterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
]

urlpatterns = ui_patterns + api_patterns + health_patterns
