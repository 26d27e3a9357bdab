"""Adapters: implementations of the application ports on top of real infrastructure."""
