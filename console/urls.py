from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path

from secrets_app.admin.base import reauthenticating_admin_view

admin.site.site_header = "Secrets Console administration"
admin.site.site_title = "Secrets Console admin"
# The admin signs in through the console's sign-in (lockouts, two-factor), never a form of its own,
# and every change made there needs a recent password, TOTP or passkey check, as on the pages.
admin.site.login = secure_admin_login(admin.site.login)
admin.site.admin_view = reauthenticating_admin_view(admin.site.admin_view)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("secrets_app.urls")),
]

handler400 = "secrets_app.views.errors.bad_request"
handler403 = "secrets_app.views.errors.permission_denied"
handler404 = "secrets_app.views.errors.page_not_found"
handler500 = "secrets_app.views.errors.server_error"
# django-allauth's rate limits (reset e-mails, confirmation mails, two-factor codes) answer with it.
handler429 = "secrets_app.views.errors.too_many_requests"
