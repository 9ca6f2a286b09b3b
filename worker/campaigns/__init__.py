"""Campaigns (seeds 002 and 003): a template sent to a contact list, a batch a day, resumable."""
