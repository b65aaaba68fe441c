"""The base of PayBridge's pydantic models (domain, settings, adapters' wire models, HTTP)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """A model whose validator and serializer are built at its first use (`defer_build`), not when its module is
    imported: a Lambda's cold start builds the models the request it serves needs, not every model its imports
    declare (an ops request about one invoice never builds the settlement, receipt or bank-line models). What a
    model validates and how it serializes are the same; a subclass's own `model_config` is merged with this one."""

    model_config = ConfigDict(defer_build=True)
