"""Domain model, lifecycle profiles and use-cases; no gRPC and no SQL here."""
