"""CRMs."""
