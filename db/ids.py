"""Row ids are PostgreSQL bigints: every id a request or a record names lies in 1..MAX_ID.

Anything outside is refused where it enters (422, a poison record, "not found"), never
sent to SQL, where it would fail as an out-of-range parameter.
"""

from __future__ import annotations

MAX_ID = 2**63 - 1
# The most digits an id's decimal text can have (19): longer text names no row.
MAX_ID_DIGITS = len(str(MAX_ID))
