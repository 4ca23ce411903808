"""Discount codes: one per recipient, minted once."""
