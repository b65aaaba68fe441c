"""The base of the HTTP API's request and response models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ApiModel(BaseModel):
    """A request or response model of a route: its validator and serializer are built at first use (`defer_build`),
    so a cold start builds the models of the route it serves, not those of every route the function has. The
    OpenAPI document and the validation are the same (building it then is what pydantic would have done at import);
    a subclass's own `model_config` is merged with this one."""

    model_config = ConfigDict(defer_build=True)
