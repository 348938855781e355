"""Benchmarks for reactor, each comparing it with other models in the same run.

Run ``python -m benchmarks`` to list the suites. They live beside the
package, never inside it, and are never part of the pass/fail test suite:
tests assert behaviour, benchmarks report numbers.
"""
