"""Prometheus metrics and OpenTelemetry spans at the edges of the hexagon."""
