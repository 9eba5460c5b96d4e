"""Storage: one schema and one interface, SQLite (embedded default) or PostgreSQL behind it."""
