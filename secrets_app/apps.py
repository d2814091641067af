from django.apps import AppConfig


class SecretsAppConfig(AppConfig):
    name = "secrets_app"
    verbose_name = "Secrets Console"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import crypto, identity, signals  # noqa: F401  (connects the receivers)

        # Parse the key ring now, so a malformed SECRETS_ENCRYPTION_KEYS stops start-up with
        # a message naming it, instead of failing on the first secret.
        crypto.key_ring()
