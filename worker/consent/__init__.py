"""Consent: who must never be written to again, and what people write back."""
