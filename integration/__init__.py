"""Persistence, shared state and the dispatch platforms.

Nothing here imports bots/ or handlers/: the flows reach this package only through
the small protocols they own, and the composition root wires the two together.
"""
