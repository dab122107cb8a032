"""jobcontrol test suite: real gRPC server on port 0, real database file."""
