"""Demo data: `manage.py seed_demo` (users, polls of each visibility, grants, live votes)."""
