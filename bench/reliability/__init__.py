"""The reliability suite (issue 8): fuzzers and fault injectors run against the real engine.

Each category returns a Tally (tried / handled / crash / hang / traceback / lost) and the
failing cases with what is needed to reproduce them. tests/test_reliability*.py run small
counts by default and the full counts under ``-m slow``; bench/bench_reliability.py runs the
full counts and prints the table.
"""
