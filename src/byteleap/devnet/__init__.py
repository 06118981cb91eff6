"""One command for a whole local network: `byteleap devnet`.

Starts every role as a separate process on 127.0.0.1 (for now the chain; the
validator, miners, workers and gateway join as they land), runs the main job as
named steps, and reports a `DevnetSummary`.
"""

from byteleap.devnet.run import DevnetOptions, run_devnet
from byteleap.devnet.summary import DevnetSummary

__all__ = ["DevnetOptions", "DevnetSummary", "run_devnet"]
