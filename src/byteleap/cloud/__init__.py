"""The customer-facing cloud: gateway API, scheduler, jobs, leases, services and the executors
that run a job's work on a worker."""
