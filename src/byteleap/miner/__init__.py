"""The miner: aggregates workers, serves validators.

- `registry`: the worker registry (pure state machine: states, heartbeats, IP history).
- `ledger`: the miner's own SQLite file (workers, IP history, one-time tokens).
- `links`: one live WebSocket link per worker, each with its own queue and timeouts.
- `service`: the FastAPI app (validator API over signed HTTPS + the worker WebSocket).
"""
