"""`python -m bench` (`make bench`): what a ticket costs the engine, against its floor.

See docs/benchmarks.md for the figures of a full run, the machine and how to reproduce.
"""
