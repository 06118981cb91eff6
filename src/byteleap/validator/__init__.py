"""The validator: challenge rounds, verification, scoring and weights."""
