"""The store's Alembic environment, run by `Store.migrate()`; a package so that env.py ships with it."""
