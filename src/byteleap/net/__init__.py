"""Node-to-node transport: TLS identities with on-chain key pinning, signed requests,
versioned messages."""
