"""Reserve operations: BIP322 proofs of control for vault addresses and key-health checks.

Imports psbt/, policy/ and keys/; nothing below imports this layer. See docs/reserves.md.
"""
