"""Adapters to the outside world (PSPs, CRMs, the lifecycle engine), each behind a small interface."""
