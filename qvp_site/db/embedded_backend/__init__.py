"""Django's PostgreSQL backend for the embedded server: the first connection starts it."""
