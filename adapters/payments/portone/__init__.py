"""PortOne: the plug-in (plugin.py), its routes (web.py), the provider (provider.py) and client."""

# Here rather than in client.py / provider.py, which import aiohttp and the core: the plug-in's settings need them.
DEFAULT_API_BASE_URL = "https://api.portone.cloud"
CHECKOUT_ORIGINS = ("https://checkout.portone.cloud", "https://stage-checkout.portone.cloud")
