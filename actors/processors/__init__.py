"""Processors: turn a verified file into a `schemas.results.Result`.

Each is a small class registered under the entry-point group `conveyor.processors`.
"""
