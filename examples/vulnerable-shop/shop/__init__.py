"""The shop's application modules."""
