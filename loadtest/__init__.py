"""Load generators and benchmarks (never imported by the server)."""
