"""What the Lambda handlers share: error → HTTP problem mapping, request/response models.

Powertools' `event_handler` and `data_classes` packages are deferred here, before any module of this package
imports from them (paybridge.lazy_packages: their `__init__`s import every resolver and every event class; a
handler uses one of each). Handlers take the resolver and the parameter markers from `paybridge.http.resolver`."""

from paybridge.lazy_packages import lazy

lazy("aws_lambda_powertools.event_handler")
lazy("aws_lambda_powertools.utilities.data_classes")
