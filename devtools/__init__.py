"""Development tools: local stand-ins for the service's infrastructure, for the demo and tests."""
