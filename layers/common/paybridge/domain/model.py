"""The base of PayBridge's pydantic models (domain, settings, adapters' wire models, HTTP), and the one setting
that every pydantic type of the layer shares."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

#: Build a type's validator and serializer at its first use (`defer_build`), not when its module is imported: a
#: Lambda's cold start builds what the request it serves needs, not every type its imports declare (an ops request
#: about one invoice never builds the settlement, receipt or bank-line types). What is validated and how it
#: serializes are the same. Every `Model` has it; the layer's pydantic dataclasses and module-level `TypeAdapter`s
#: take it as their config (with their own settings added).
DEFERRED = ConfigDict(defer_build=True)


class Model(BaseModel):
    """A model built at its first use (`DEFERRED`); a subclass's own `model_config` is merged with this one."""

    model_config = ConfigDict(**DEFERRED)
