"""The proofing stage: billing preflight, discount code, personalized proof image."""
