from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "Secrets Console administration"
admin.site.site_title = "Secrets Console admin"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("secrets_app.urls")),
]

handler400 = "secrets_app.views.errors.bad_request"
handler403 = "secrets_app.views.errors.permission_denied"
handler404 = "secrets_app.views.errors.page_not_found"
handler500 = "secrets_app.views.errors.server_error"
