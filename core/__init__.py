"""paylinks core: money, storage, links, merchants, conversation. Imports no web or chat SDK."""
