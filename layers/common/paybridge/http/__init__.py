"""What the Lambda handlers share: error → HTTP problem mapping, request/response models."""
