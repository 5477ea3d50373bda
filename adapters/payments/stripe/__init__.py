"""Stripe: the plug-in (plugin.py), the provider (provider.py) on the SDK's client (client.py)."""

# Here rather than in client.py / provider.py, which import the Stripe SDK: the plug-in's settings need them.
DEFAULT_API_BASE_URL = "https://api.stripe.com"
# Where Checkout Sessions' URLs point (a Stripe custom checkout domain would need adding here).
CHECKOUT_ORIGIN = "https://checkout.stripe.com"
