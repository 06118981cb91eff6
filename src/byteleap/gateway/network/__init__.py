"""The public network view of the gateway: ``/v1/network/*`` over the validator's store.

``NetworkView`` (view.py) reads the store and the chain into the models of models.py, with
the pure arithmetic in summary.py; ``network_router`` (rest.py) serves them without an API
key. The dashboard (``gateway/dashboard``) draws these same answers.
"""

from byteleap.gateway.network.rest import network_router
from byteleap.gateway.network.view import MetagraphSource, NetworkView

__all__ = ["MetagraphSource", "NetworkView", "network_router"]
