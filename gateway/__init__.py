"""REST gateway: an ASGI app mapping HTTP onto the jobcontrol gRPC API. Never imports service/."""
