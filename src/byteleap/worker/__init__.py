"""The worker node: probes its hardware, solves challenges and runs jobs through an executor."""
