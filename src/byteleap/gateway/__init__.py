"""The gateway: the customer API (REST and gRPC) over one service layer.

- `models`: what customers send and see (JobSpec, JobView, LogEntry) and the job state table.
- `errors`: the CloudError tree; each error knows its HTTP status and gRPC code.
- `service`: the `CloudService` port both APIs call, and its real implementation.
"""
