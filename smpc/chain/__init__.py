"""Ledger logic of the audit chain: encoding, records, Merkle trees, blocks, seals, verification.

No networking, no files: the SQLite store and the chain node live in ``parties``.
"""
