"""Adapters: one module per outside system (chat platforms, payment providers, the web)."""
