"""Benchmarks and measurements that run against real components."""
