"""English formats, Django's but for times: ``2026-12-06 06:22:56 UTC`` in the admin's lists,
records and histories (not ``Dec. 6, 2026, 6:22 a.m.``), so that two entries of the same
minute are told apart and the zone is never guessed. The exports write ISO 8601 in UTC."""

DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = DATETIME_FORMAT
TIME_FORMAT = "H:i:s"
