"""Payment service providers."""
