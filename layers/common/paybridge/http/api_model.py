"""The base of the HTTP API's request and response models."""

from __future__ import annotations

from paybridge.domain.model import Model


class ApiModel(Model):
    """A request or response model of a route: built at first use, as every `Model`, so a cold start builds the
    models of the route it serves, not those of every route the function has (the OpenAPI document and the
    validation are the same)."""
