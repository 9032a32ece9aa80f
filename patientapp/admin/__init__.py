"""The admin blueprint: users, settings, integrations, audit log."""
