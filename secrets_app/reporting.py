"""Error reports that never carry a secret value, even with DEBUG on."""

from typing import Any

from django.views.debug import SafeExceptionReporterFilter

# The JSON API's framework and its validation. A request's parsed input and an answer's data pass
# through their frames and those they call (views, renderers, encoders): none of these frames'
# variables is ever reported.
FRAMEWORK_MODULES = ("ninja.", "pydantic.", "pydantic_core.")


class AlwaysSafeExceptionReporterFilter(SafeExceptionReporterFilter):
    """Django cleanses `sensitive_variables` / `sensitive_post_parameters` only when DEBUG is
    off; a developer's debug page is still a page that a value must never reach."""

    def is_active(self, request: Any) -> bool:
        return True

    def get_traceback_frame_variables(self, request: Any, tb_frame: Any) -> Any:
        if _within_framework(tb_frame):
            return [(name, self.cleansed_substitute) for name in tb_frame.f_locals]
        return super().get_traceback_frame_variables(request, tb_frame)


def _within_framework(frame: Any) -> bool:
    """Is this frame the API framework's, or called (at any depth) by it?"""
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith(FRAMEWORK_MODULES):
            return True
        frame = frame.f_back
    return False
