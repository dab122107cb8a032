"""gRPC edge: servicers, proto <-> domain conversion, error mapping, interceptors."""
