"""Data pipelines that run on a distributed engine (Ray Data): corpus tokenization."""
