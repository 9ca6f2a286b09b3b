"""Storage layer: settings, the clock, the database, models and migrations."""
