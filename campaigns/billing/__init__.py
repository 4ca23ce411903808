"""Billing preflight: may this org be charged for proofs and postcards?"""
