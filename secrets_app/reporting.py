"""Error reports that never carry a secret value, even with DEBUG on."""

from typing import Any

from django.views.debug import SafeExceptionReporterFilter


class AlwaysSafeExceptionReporterFilter(SafeExceptionReporterFilter):
    """Django cleanses `sensitive_variables` / `sensitive_post_parameters` only when DEBUG is
    off; a developer's debug page is still a page that a value must never reach."""

    def is_active(self, request: Any) -> bool:
        return True
