"""Verification rules and values: pure Python, no I/O and no infrastructure imports."""
