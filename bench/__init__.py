"""Benchmarks: programs that print figures (and write them as JSON), run by hand or in CI.

Performance is measured here rather than asserted in tests (see STYLE.md); each benchmark starts
what it needs - the test control plane, a Git server, ``gitsync serve`` - and stops it again.
"""
