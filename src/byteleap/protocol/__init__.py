"""The contract every role shares: pydantic models and pure rules, no I/O, no role imports.

- `api`: the customer API's jobs and leases (specs, views, state tables).
- `service_spec`: inference services as customers send and see them.
- `execution`: what a worker runs and how it ended (the wire half of the executor port).
- `artifacts`: the files a job leaves, and the limits every hop applies to them.
- `hardware`: a worker's hardware inventory.
- `vm_lease`, `exec_frames`: a VM lease's messages and a lease's exec session frames.
- `ssh`: the SSH public keys a customer may hand us.
- `states`: every state table with its transitions (workers, challenges).
- `ids`: id and hex types.

Nothing here may import a role (gateway, validator, miner, worker, sdk), the store, the chain or
the transport; ``make lint`` checks it.
"""
