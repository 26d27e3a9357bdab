"""Notifier adapters that tell other services about verification events."""
