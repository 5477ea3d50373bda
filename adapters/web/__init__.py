"""The web adapter: pay pages, REST API, webhooks and health, as aiohttp route tables."""
