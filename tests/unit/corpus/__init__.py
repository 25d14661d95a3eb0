"""Hostile input for the normalizer, generated rather than stored (see ``hostile``)."""
