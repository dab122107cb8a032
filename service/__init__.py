"""jobcontrol service: gRPC server over a storage-backed lifecycle core."""
