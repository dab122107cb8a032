"""`jobctl bench`: the load generator (gRPC and REST, operation mixes, closed or open
loop, several client processes, a seeded job population, an echo baseline)."""
