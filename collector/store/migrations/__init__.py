"""Schema migrations (Alembic). ``Store`` upgrades the database to the newest revision on start."""
