"""The checks behind `byteleap doctor`: one small module per subject (host, gpu, identity,
store), each with its verdicts as pure functions of what was probed, and `plan` which says
which role gets which check and runs them under their deadlines."""

from byteleap.commands.doctor_checks.model import Finding, Status
from byteleap.commands.doctor_checks.plan import run_role

__all__ = ["Finding", "Status", "run_role"]
