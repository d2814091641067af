"""The admin site: team workspace management, tags and their grants, read-only secrets and audit log.

Access comes from `permissions`, writes go through the services. Django loads this package to find
the registrations made by its modules.
"""

from secrets_app.admin import records, tags, users, workspaces  # noqa: F401  (registers the model admins)
