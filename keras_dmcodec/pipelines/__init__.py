"""Data pipelines that run on a distributed engine (Ray Data): corpus tokenization.

``tokenize`` (the driver and the Ray session), ``encoder`` (the ``ShardEncoder`` actor)
and ``shards`` (shard planning and the Parquet files).
"""
