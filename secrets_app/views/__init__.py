"""The console's pages, by page group: Account Settings, and Developer Settings per workspace."""
