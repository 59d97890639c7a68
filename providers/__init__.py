"""Chat models, one module per kind: remote SDK clients, the embedded local model, and the
stand-in used when a provider has no key."""
