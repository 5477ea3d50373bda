"""Merchant webhooks over HTTP: the outbox sender that signs (Standard Webhooks) and posts events."""
