"""The dialects the gateway speaks: the native JSON mapping and the legacy APIs."""
