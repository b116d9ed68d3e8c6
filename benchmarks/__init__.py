"""Benchmarks: run with `bazel run -c opt //benchmarks:<name>`, never as tests."""
