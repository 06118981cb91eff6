"""byteleap: a decentralized GPU cloud for AI, run as a Bittensor subnet."""

__version__ = "0.1.0"
