from django.contrib.auth import views as auth_views
from django.urls import path

from . import api, views

developer = "settings/developer/<slug:slug>"

ui_patterns = [
    path("", views.home, name="home"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/signup/", views.sign_up, name="signup"),
    path("settings/account/", views.account_settings, name="account-settings"),
    path("settings/account/sessions/revoke-others/", views.sessions_revoke_others, name="sessions-revoke-others"),
    path("settings/account/sessions/<str:session_id>/revoke/", views.session_revoke, name="session-revoke"),
    path("settings/account/password/", views.PasswordChangeView.as_view(), name="password_change"),
    path(
        "settings/account/password/done/",
        auth_views.PasswordChangeDoneView.as_view(template_name="account/password_change_done.html"),
        name="password_change_done",
    ),
    path("settings/developer/", views.developer_settings, name="developer-settings"),
    path("settings/workspaces/new/", views.workspace_new, name="workspace-new"),
    path(f"{developer}/secrets/", views.secrets_page, name="secrets"),
    path(f"{developer}/value-lookup/", views.value_lookup, name="value-lookup"),
    # Not under secrets/: a secret may be called "import".
    path(f"{developer}/import/", views.secrets_import, name="secrets-import"),
    path(f"{developer}/import/confirm/", views.secrets_import_confirm, name="secrets-import-confirm"),
    path(f"{developer}/secrets/<str:key>/", views.secret_detail, name="secret-detail"),
    path(f"{developer}/secrets/<str:key>/delete/", views.secret_delete, name="secret-delete"),
    path(f"{developer}/secrets/<str:key>/tags/", views.secret_tags_add, name="secret-tags-add"),
    path(
        f"{developer}/secrets/<str:key>/tags/<str:tag>/remove/",
        views.secret_tag_remove,
        name="secret-tag-remove",
    ),
    path(f"{developer}/access/", views.access_page, name="access"),
    path(f"{developer}/access/grants/<str:grant_id>/revoke/", views.grant_revoke, name="grant-revoke"),
    path(f"{developer}/access/tags/<str:tag>/delete/", views.tag_delete, name="tag-delete"),
    path(f"{developer}/workflows/", views.workflows_page, name="workflows"),
    path(f"{developer}/workflows/<str:name>/launch/", views.workflow_launch, name="workflow-launch"),
    path(f"{developer}/workflows/<str:name>/delete/", views.workflow_delete, name="workflow-delete"),
    path(f"{developer}/executions/", views.executions_page, name="executions"),
    path("settings/executions/<str:execution_id>/finish/", views.execution_finish, name="execution-finish"),
    path(f"{developer}/activity/", views.activity_page, name="activity"),
    path(f"{developer}/activity.<str:export_format>", views.activity_export, name="activity-export"),
    path(f"{developer}/settings/", views.workspace_settings_page, name="workspace-settings"),
    path(f"{developer}/members/", views.members_page, name="members"),
    path(f"{developer}/members/<str:username>/", views.member_change, name="member-change"),
]

tags_api = "api/v1/workspaces/<slug:slug>/tags"

api_patterns = [
    path("api/v1/openapi.json", api.openapi_document, name="api-openapi"),
    path("api/v1/session/", api.session, name="api-session"),
    path("api/v1/sessions/", api.user_sessions, name="api-user-sessions"),
    path("api/v1/sessions/revoke-others/", api.user_sessions_revoke_others, name="api-user-sessions-revoke-others"),
    path("api/v1/sessions/<str:session_id>/", api.user_session, name="api-user-session"),
    path("api/v1/workspaces/", api.workspaces, name="api-workspaces"),
    path("api/v1/workspaces/<slug:slug>/", api.workspace, name="api-workspace"),
    path("api/v1/workspaces/<slug:slug>/secrets/", api.secrets, name="api-secrets"),
    # Before the secret "import" itself, whose other methods it hands on (see api.secrets_import_or_secret).
    path("api/v1/workspaces/<slug:slug>/secrets/import/", api.secrets_import_or_secret, name="api-secrets-import"),
    path("api/v1/workspaces/<slug:slug>/secrets/<str:key>/", api.secret, name="api-secret"),
    path("api/v1/workspaces/<slug:slug>/value-lookup/", api.value_lookup, name="api-value-lookup"),
    path("api/v1/workspaces/<slug:slug>/secrets/<str:key>/tags/", api.secret_tags, name="api-secret-tags"),
    path(
        "api/v1/workspaces/<slug:slug>/secrets/<str:key>/tags/<str:tag>/",
        api.secret_tag,
        name="api-secret-tag",
    ),
]

api_patterns += [
    path(f"{tags_api}/", api.tags, name="api-tags"),
    path(f"{tags_api}/<str:tag>/", api.tag, name="api-tag"),
    path(f"{tags_api}/<str:tag>/grants/", api.tag_grants, name="api-tag-grants"),
    path(f"{tags_api}/<str:tag>/grants/<str:grant_id>/", api.tag_grant, name="api-tag-grant"),
]

api_patterns += [
    path("api/v1/workspaces/<slug:slug>/workflows/", api.workflows, name="api-workflows"),
    path("api/v1/workspaces/<slug:slug>/workflows/<str:name>/", api.workflow, name="api-workflow"),
    path("api/v1/workspaces/<slug:slug>/executions/", api.executions, name="api-executions"),
    path("api/v1/executions/<str:execution_id>/", api.execution, name="api-execution"),
    path("api/v1/executions/<str:execution_id>/finish/", api.execution_finish, name="api-execution-finish"),
    path("api/v1/runner/ping/", api.runner_ping, name="api-runner-ping"),
    path("api/v1/runner/secrets/<str:key>/", api.runner_secret, name="api-runner-secret"),
    path("api/v1/runner/resolve/", api.runner_resolve, name="api-runner-resolve"),
]

# For load balancers: the process is up; the process can reach its database and cache.
health_patterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
]

urlpatterns = ui_patterns + api_patterns + health_patterns
