"""Helpers for test suites (ours and yours): deterministic keyholders and hypothesis strategies."""
