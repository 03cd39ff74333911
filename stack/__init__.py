"""The local service stack: real PostgreSQL, Valkey and Kafka on 127.0.0.1, no Docker.

Each service lives in a profile's data folder (`.stack/<profile>/`) with its own
ports, so the test stack never disturbs a running development stack.
"""
