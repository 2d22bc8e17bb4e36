"""Hostile-input cases, one module per part of the program; tests/test_hostile_inputs.py runs them all.

Add a module here that defines ``CASES: list[Case]`` (``from .case import Case``); the runner finds it.
"""
