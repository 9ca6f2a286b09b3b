"""Engagement (seed 004): the state machine, the daily checks, the goodbye and the daily runs."""
