"""Fault drills: votes over HTTP from many users while a service fails, a ledger of every
answer, and a comparison of everything a reader can see at the end (`python -m
bench.drills NAME`; docs/RELIABILITY.md has the results)."""
