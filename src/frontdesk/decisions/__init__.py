"""The decision loop's data: served decisions and outcomes logged, validated and joined.

``records`` (the schemas and outcome checks), ``writer`` (the durable
background Parquet writer), ``store`` (a decision-log folder), ``ingest``
(outcomes from files), ``join`` (decisions + outcomes -> a log folder),
``info`` (what a folder holds, verified), ``feedback`` (a joined folder's shown lists and
agents' choices, as training rows), ``lift`` (each served version against the default).
"""
